"""The incidents app's models, by sub-domain."""

from .access import AccessDenial, AccessFee, AccessRequest
from .breach import (
    AffectedIndividual,
    AudienceNotice,
    ClockAlert,
    Evidence,
    Incident,
    LawEnforcementDelay,
    Notice,
)
from .oversight import (
    AccessReview,
    AccessReviewEntry,
    AccessReviewReminder,
    BaaReminder,
    Policy,
    PolicyAcknowledgement,
    PolicyVersion,
)

__all__ = [
    "AccessDenial",
    "AccessFee",
    "AccessRequest",
    "AccessReview",
    "AccessReviewEntry",
    "AccessReviewReminder",
    "AffectedIndividual",
    "AudienceNotice",
    "BaaReminder",
    "ClockAlert",
    "Evidence",
    "Incident",
    "LawEnforcementDelay",
    "Notice",
    "Policy",
    "PolicyAcknowledgement",
    "PolicyVersion",
]

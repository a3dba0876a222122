"""Consent records, HIPAA authorizations, preferences, waivers and suppression.

History tables (events, texts) are append-only: a database trigger refuses UPDATE, DELETE and
TRUNCATE (migration 0002). Current state is kept in small maintained tables (ConsentState,
Authorization.status, Suppression.removed_at) so the send gate reads one row per contact.
Business rules live in services.py and gate.py; here only data and the invariants the database holds.
One module per record family: common (purposes, evidence), marketing, authorizations, waivers,
suppressions.
"""

from .authorizations import (
    AUTHORIZATION_TEXT_ELEMENTS,
    MEDIA_TEXT_ELEMENTS,
    Authorization,
    AuthorizationAttachment,
    AuthorizationEvent,
    AuthorizationKind,
    AuthorizationText,
    FormSource,
    Initiator,
)
from .common import (
    TOPIC_PURPOSES,
    TRANSACTIONAL_PURPOSES,
    Channel,
    Evidence,
    Purpose,
    Source,
)
from .marketing import (
    ConsentEvent,
    ConsentState,
    ConsentText,
    ContactPreference,
    Frequency,
    PreferenceChange,
    Topic,
)
from .suppressions import (
    ConsentSettings,
    Suppression,
)
from .waivers import (
    MailboxCheck,
    UnencryptedEmailWaiver,
    WaiverDocument,
    WaiverEvent,
)

__all__ = [
    "AUTHORIZATION_TEXT_ELEMENTS",
    "MEDIA_TEXT_ELEMENTS",
    "TOPIC_PURPOSES",
    "TRANSACTIONAL_PURPOSES",
    "Authorization",
    "AuthorizationAttachment",
    "AuthorizationEvent",
    "AuthorizationKind",
    "AuthorizationText",
    "Channel",
    "ConsentEvent",
    "ConsentSettings",
    "ConsentState",
    "ConsentText",
    "ContactPreference",
    "Evidence",
    "FormSource",
    "Frequency",
    "Initiator",
    "MailboxCheck",
    "PreferenceChange",
    "Purpose",
    "Source",
    "Suppression",
    "Topic",
    "UnencryptedEmailWaiver",
    "WaiverDocument",
    "WaiverEvent",
]

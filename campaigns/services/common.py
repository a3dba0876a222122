"""What every campaigns service shares: its error type and actor references."""

from __future__ import annotations

from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict


class CampaignError(ApplicationError):
    status_code = 422
    title = "Campaign refused"


class CampaignConflict(Conflict):
    title = "Campaign state conflict"


def actor_ref(actor: Actor) -> str:
    return actor.reference

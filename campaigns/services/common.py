"""What every campaigns service shares: its error type and actor references."""

from __future__ import annotations

from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict, PermissionRefused


class CampaignError(ApplicationError):
    status_code = 422
    title = "Campaign refused"


class CampaignConflict(Conflict):
    title = "Campaign state conflict"


def author_id(actor: Actor):
    """The person who writes or submits a campaign, for four eyes: the user, or the person who created
    the API key. A key no known person created may not write campaigns: nobody could be kept from
    approving their own work through it."""
    if actor.kind == "api_key" and actor.on_behalf_of_id is None:
        raise PermissionRefused(
            "Campaigns can be written only with an API key a person of the organization created.",
            code="key_without_person",
        )
    return actor.person_id

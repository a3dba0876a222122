"""Finding the patient an audit search or a break-glass request is about, by an exact identifier.

The audit app sits below contacts, so it never imports it: contacts registers its blind-index
lookup at start-up (contacts/apps.py), the one lookup every form that names a patient uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from healthmail.actors import Actor
from healthmail.errors import ApplicationError

# finder(tenant=, actor=, identifier=, purpose=) -> the contact's id; raises ApplicationError.
PatientFinder = Callable[..., uuid.UUID]
_FINDERS: dict[str, PatientFinder] = {}


def patient_finder_register(finder: PatientFinder) -> None:
    _FINDERS["contacts"] = finder


def patient_find(*, tenant, actor: Actor, identifier: str, purpose: str) -> uuid.UUID:
    """The id of the one contact this exact identifier names (the lookup is audited by the finder)."""
    finder = _FINDERS.get("contacts")
    if finder is None:
        raise ApplicationError("Patient lookup is not available.", code="no_finder")
    return finder(tenant=tenant, actor=actor, identifier=identifier, purpose=purpose)

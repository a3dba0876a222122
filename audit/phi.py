"""Audited PHI reads: the one way views, exports, the API and the portal open PHI for a person.

    with phi_access(actor=actor, tenant=tenant, objects=[contact], fields=["email", "name"],
                    purpose="contact detail"):
        render(contact.email, contact.name)

One audit event per access: who, which objects, which fields, why, from where (request metadata),
the break-glass grant when the person reads the record under one, and every contact the objects
belong to (`contact_ids`, indexed: the patient search finds each read, however many rows it
covered). Field names are references; values never are.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from django.db import models

from healthmail.actors import Actor
from healthmail.crypto import access

from . import services
from .break_glass import break_glass_active

MAX_IDS_IN_EVENT = 500
CONTACT_MODEL = "contacts.contact"


def _contacts_of(objects: Sequence[models.Model], named: Iterable | None) -> list:
    """Every contact the read touches: those the caller names, else the objects themselves when
    they are contacts, else their `contact_id`. Objects linked to a contact only indirectly (a
    portal copy, a reply) name their contacts; records about nobody (a test note) index none."""
    if named is not None:
        return list(named)
    if objects[0]._meta.label_lower == CONTACT_MODEL:
        return [obj.pk for obj in objects]
    return [getattr(obj, "contact_id", None) for obj in objects]


@contextmanager
def phi_access(
    *,
    actor: Actor,
    tenant,
    objects: Sequence[models.Model],
    fields: Sequence[str],
    purpose: str,
    contact_ids: Iterable[uuid.UUID | str | None] | None = None,
) -> Iterator[None]:
    if not purpose.strip():
        raise ValueError("A purpose is required to read PHI.")
    if not objects:
        yield
        return
    model = type(objects[0])
    ids = [str(obj.pk) for obj in objects]
    details = {"fields": sorted(fields), "purpose": purpose, "count": len(ids), "ids": ids[:MAX_IDS_IN_EVENT]}
    if actor.kind == "user" and len(ids) == 1:
        break_glass = break_glass_active(
            user=actor.user, tenant=tenant, target_type=model._meta.label_lower, target_id=ids[0]
        )
        if break_glass is not None:
            details["break_glass"] = str(break_glass.pk)
    target = (model._meta.label_lower, ids[0] if len(ids) == 1 else "")
    services.record(
        actor=actor,
        action="phi.read",
        target=target,
        tenant=tenant,
        details=details,
        contacts=_contacts_of(objects, contact_ids),
    )
    grant = access.Grant(model._meta.label_lower, frozenset(fields), frozenset(ids))
    with access.granted(grant):
        yield

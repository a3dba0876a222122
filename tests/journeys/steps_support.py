"""What the step tests share: a manual journey of given steps, enrolment run to the end, a contact's
position and tags."""

from __future__ import annotations

import copy
import datetime

from django.utils import timezone

from contacts.models import Contact
from healthmail.tenants.context import tenant_context
from journeys.models import Position
from journeys.services import engine, enrolment

from .conftest import SYSTEM, activated, definition

EXIT = {"done": {"type": "exit"}}


def journey_of(tenant, people, steps, start, name="Steps", **extra):
    body = {"entry": {"kind": "manual"}, "start": start, "steps": copy.deepcopy(steps), **extra}
    return activated(tenant, people, body, name=name)


def enrol_and_run(tenant, journey, contacts, now=None):
    for contact in contacts:
        enrolment.journey_enrol(tenant=tenant, actor=SYSTEM, journey=journey, contact=contact)
    now = now or timezone.now() + datetime.timedelta(seconds=1)
    while engine.positions_advance(tenant=tenant, now=now).advanced:
        pass


def position_of(tenant, journey, contact) -> Position:
    with tenant_context(tenant):
        return Position.objects.filter(journey=journey, contact=contact).order_by("-entered_at").first()


def tags(tenant, contact) -> list[int]:
    with tenant_context(tenant):
        return list(Contact.objects.get(pk=contact.pk).tag_tokens)


def quiet_journey(tenant, people, ready):
    """One marketing email, held by quiet hours 21:00 to 08:00."""
    send = {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters", "next": "done",
    }  # fmt: skip
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="mail",
        steps={"mail": send, **EXIT},
        quiet_hours={"start": "21:00", "end": "08:00"},
    )
    return activated(tenant, people, body)

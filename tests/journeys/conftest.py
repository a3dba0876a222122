"""Journey test helpers: people in each role, a template, a verified sender domain with DNS published
for the loopback SMTP servers (tests/delivery/servers.py), contacts with consent, and a journey taken
through the real approval to active."""

from __future__ import annotations

import copy
import uuid

import pytest

from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from journeys.services import journeys as journey_services
from tests.campaigns.conftest import person, template
from tests.delivery.conftest import kit, smtp_kit, transport  # noqa: F401 (fixtures)
from tests.delivery.engine_support import new_contact, opted_in, verified_sender_domain

SYSTEM = Actor.system("tests")


@pytest.fixture
def people(tenant_a):
    return {
        "marketer": person(tenant_a, Role.MARKETER),
        "compliance": person(tenant_a, Role.COMPLIANCE_OFFICER),
        "admin": person(tenant_a, Role.TENANT_ADMIN),
    }


def definition(*, template_id, sender_domain_id, entry=None, steps=None, start="welcome", **extra) -> dict:
    """An appointment journey: welcome email, wait for the visit (a day at most), a branch on a tag,
    a follow-up email, exit."""
    steps = steps or {
        "welcome": {
            "type": "send",
            "template_id": str(template_id),
            "purpose": "marketing",
            "topic": "marketing_newsletters",
            "next": "visit",
        },
        "visit": {
            "type": "wait_event",
            "event": "visit.done",
            "timeout_seconds": 86400,
            "next": "check",
            "timeout_next": "done",
        },
        "check": {"type": "branch", "condition": {"tag": "vip"}, "yes": "tagged", "no": "followup"},
        "tagged": {"type": "update", "add_tag": "followed_up", "next": "followup"},
        "followup": {
            "type": "send",
            "template_id": str(template_id),
            "purpose": "marketing",
            "topic": "marketing_newsletters",
            "next": "done",
        },
        "done": {"type": "exit"},
    }
    return {
        "entry": entry or {"kind": "event", "event": "appointment.booked"},
        "start": start,
        "sender_domain_id": str(sender_domain_id),
        "sender_name": "Synthetic Clinic",
        "steps": copy.deepcopy(steps),
        **extra,
    }


def activated(tenant, people, body: dict, name: str = "Appointment follow-up"):
    """A journey created by the marketer, approved by compliance, activated: the real path."""
    marketer, compliance = people["marketer"], people["compliance"]
    journey = journey_services.journey_create(
        tenant=tenant, actor=marketer.actor, role=marketer.role, name=name, definition=body
    )
    with tenant_context(tenant):
        version = journey.versions.get()
    journey_services.journey_submit(tenant=tenant, actor=marketer.actor, role=marketer.role, version=version)
    journey_services.journey_approve(
        tenant=tenant, actor=compliance.actor, role=compliance.role, version=version
    )
    return journey_services.journey_activate(
        tenant=tenant, actor=marketer.actor, role=marketer.role, journey=journey, version=version
    )


@pytest.fixture
def ready(tenant_a, people):
    """A verified sender domain (published DNS), a lint-clean template, and a helper for contacts."""
    sender_domain, _ = verified_sender_domain(tenant_a)
    template_obj = template(tenant_a, people["marketer"].actor)
    return {"sender_domain": sender_domain, "template": template_obj}


def patient(tenant, *, opt_in: bool = True, domain: str = "good.test"):
    contact = new_contact(tenant, f"patient.{uuid.uuid4().hex[:8]}@{domain}")
    if opt_in:
        opted_in(tenant, contact)
    return contact


WAIT_ONLY = {
    "wait": {"type": "wait", "seconds": 3600, "next": "done"},
    "done": {"type": "exit"},
}


def active_journey(tenant, *, steps=None, entry=None, name: str = "Recall"):
    """An active journey of `tenant` without email (no template or sender domain needed), approved by
    a compliance officer other than its author: for isolation and API tests."""
    people = {
        "marketer": person(tenant, Role.MARKETER),
        "compliance": person(tenant, Role.COMPLIANCE_OFFICER),
    }
    body = {"entry": entry or {"kind": "manual"}, "start": "wait", "steps": copy.deepcopy(steps or WAIT_ONLY)}
    return activated(tenant, people, body, name=name)


@pytest.fixture
def no_wakeups(monkeypatch):
    """Positions advance only when the test runs the engine: no task is queued to advance them."""
    from journeys import tasks

    monkeypatch.setattr(tasks, "advance_soon", lambda **kwargs: None)

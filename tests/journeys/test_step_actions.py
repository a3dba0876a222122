"""Steps that act on the contact or outside the journey: list and field changes, the signed webhook
(one delivery per contact, ids only, an endpoint of the same organization), notifying staff."""

from __future__ import annotations

import pytest

from contacts.models import Contact
from contacts.tagging import contacts_tag, tag_token
from delivery.models import WebhookDelivery
from delivery.webhooks.services import endpoint_create
from healthmail.accounts.roles import Role
from healthmail.sysmail.models import SystemMail
from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from tests.campaigns.conftest import person

from .conftest import SYSTEM, patient
from .steps_support import EXIT, enrol_and_run, journey_of, position_of, tags

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_wakeups")]


def test_list_and_field_steps_change_the_contacts(tenant_a, people):
    steps = {
        "add": {"type": "list", "list": "recall", "action": "add", "next": "lang"},
        "lang": {"type": "update", "set_field": {"field": "language", "value": "es"}, "next": "drop"},
        "drop": {"type": "list", "list": "lapsed", "action": "remove", "next": "done"},
        **EXIT,
    }
    journey = journey_of(tenant_a, people, steps, "add")
    contact = patient(tenant_a, opt_in=False)
    contacts_tag(tenant=tenant_a, actor=SYSTEM, contact_ids=[contact.pk], tag="list.lapsed")

    enrol_and_run(tenant_a, journey, [contact])

    assert tags(tenant_a, contact) == [tag_token(tenant_a, "list.recall")]
    with tenant_context(tenant_a):
        assert Contact.objects.get(pk=contact.pk).language == "es"
    assert position_of(tenant_a, journey, contact).exit_reason == "completed"


def test_a_webhook_step_queues_one_signed_delivery_per_contact_with_ids_only(tenant_a, people):
    endpoint = endpoint_create(
        tenant=tenant_a,
        actor=SYSTEM,
        url="https://hooks.example.com/journeys",
        event_types=["message.delivered"],
        resolve=lambda host, port: ["93.184.216.34"],
    ).endpoint
    steps = {"hook": {"type": "webhook", "endpoint_id": str(endpoint.pk), "next": "done"}, **EXIT}
    journey = journey_of(tenant_a, people, steps, "hook")
    contacts = [patient(tenant_a, opt_in=False) for _ in range(2)]

    enrol_and_run(tenant_a, journey, contacts)

    with tenant_context(tenant_a):
        deliveries = list(WebhookDelivery.objects.filter(endpoint=endpoint, event_type="journey.step"))
    assert sorted(d.payload["contact_id"] for d in deliveries) == sorted(str(c.pk) for c in contacts)
    payload = deliveries[0].payload
    assert set(payload) == {
        "event", "event_id", "journey_id", "version", "step", "position_id", "contact_id", "occurred_at",
        "delivery_id",
    }  # fmt: skip
    assert payload["step"] == "hook"
    assert payload["delivery_id"] == str(deliveries[0].pk)


def test_a_webhook_step_needs_an_endpoint_of_the_same_organization(tenant_a, tenant_b, people):
    foreign = endpoint_create(
        tenant=tenant_b,
        actor=SYSTEM,
        url="https://hooks.example.com/b",
        event_types=["message.delivered"],
        resolve=lambda host, port: ["93.184.216.34"],
    ).endpoint
    steps = {"hook": {"type": "webhook", "endpoint_id": str(foreign.pk), "next": "done"}, **EXIT}

    with pytest.raises(spec.DefinitionInvalid) as refused:
        journey_of(tenant_a, people, steps, "hook")
    assert refused.value.extra["problems"][0]["where"] == "steps.hook.endpoint_id"


def test_notify_mails_the_staff_of_the_role_with_links_not_names(tenant_a, people):
    coordinator = person(tenant_a, Role.CLINICAL_REVIEWER)
    steps = {
        "tell": {"type": "notify", "role": "clinical_reviewer", "subject": "Follow up", "next": "done"},
        **EXIT,
    }
    journey = journey_of(tenant_a, people, steps, "tell")
    contact = patient(tenant_a, opt_in=False)

    enrol_and_run(tenant_a, journey, [contact])

    with tenant_context(tenant_a):
        (mail,) = SystemMail.objects.filter(topic="journeys.notify")
    assert mail.recipient_user_id == coordinator.user.pk
    assert f"/contacts/{contact.pk}/" in mail.content["body"]
    assert contact.email not in mail.content["body"]

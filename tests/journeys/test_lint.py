"""A journey's emails pass the campaigns' message lint before review: commercial email names its
sender, carries the postal address and a working unsubscribe link, and the sender name has no line
break. Errors refuse the submission (the version stays a draft) with each problem at its place."""

from __future__ import annotations

import pytest
from django.urls import reverse

from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from journeys import definition as spec
from journeys.models import JourneyVersion
from journeys.services import journeys as journey_services
from tests.conftest import sign_in

from .conftest import definition

pytestmark = pytest.mark.django_db


def _create(tenant, people, body):
    marketer = people["marketer"]
    journey = journey_services.journey_create(
        tenant=tenant, actor=marketer.actor, role=marketer.role, name="Lint", definition=body
    )
    with tenant_context(tenant):
        return journey.versions.get()


def _submit(tenant, people, version):
    marketer = people["marketer"]
    return journey_services.journey_submit(
        tenant=tenant, actor=marketer.actor, role=marketer.role, version=version
    )


def _refused(tenant, people, body) -> list[dict]:
    version = _create(tenant, people, body)
    with pytest.raises(spec.DefinitionInvalid) as refused:
        _submit(tenant, people, version)
    assert refused.value.code == "lint_errors"
    with tenant_context(tenant):
        assert JourneyVersion.objects.get(pk=version.pk).status == JourneyVersion.Status.DRAFT
    return refused.value.extra["problems"]


def _body(ready, **extra):
    return definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk, **extra)


def test_a_clean_journey_is_submitted(tenant_a, people, ready):
    version = _submit(tenant_a, people, _create(tenant_a, people, _body(ready)))

    assert version.status == JourneyVersion.Status.IN_REVIEW


def test_marketing_email_without_a_sender_name_is_refused_at_the_sender_name(tenant_a, people, ready):
    body = _body(ready)
    body.pop("sender_name")

    problems = _refused(tenant_a, people, body)

    assert problems == [{"where": "sender_name", "message": "Give a sender name."}]


def test_a_sender_name_with_a_line_break_is_refused(tenant_a, people, ready):
    problems = _refused(tenant_a, people, _body(ready, sender_name="Clinic\r\nBcc: someone@example.org"))

    assert {"where": "sender_name", "message": "The sender name contains a line break."} in problems


def test_marketing_email_without_the_organizations_postal_address_is_refused_at_each_send(
    tenant_a, people, ready
):
    Tenant.objects.filter(pk=tenant_a.pk).update(postal_address="")
    tenant_a.refresh_from_db()

    problems = _refused(tenant_a, people, _body(ready))

    assert {p["where"] for p in problems} == {"steps.welcome", "steps.followup"}
    assert all("postal address" in p["message"] for p in problems)


def test_treatment_email_needs_neither_marketing_footer_nor_sender_name(tenant_a, people, ready):
    """Transactional email is not commercial: the CAN-SPAM rules do not apply, as for campaigns."""
    Tenant.objects.filter(pk=tenant_a.pk).update(postal_address="")
    tenant_a.refresh_from_db()
    body = _body(ready)
    body.pop("sender_name")
    for step in body["steps"].values():
        if step["type"] == "send":
            step["purpose"] = "treatment"
            step.pop("topic")

    version = _submit(tenant_a, people, _create(tenant_a, people, body))

    assert version.status == JourneyVersion.Status.IN_REVIEW


def test_the_page_shows_the_refusal(client, tenant_a, people, ready):
    body = _body(ready)
    body.pop("sender_name")
    version = _create(tenant_a, people, body)
    sign_in(client, people["marketer"].user, tenant=tenant_a)

    response = client.post(reverse("journeys:journey_submit", args=[version.journey_id]), follow=True)

    assert response.status_code == 200
    assert "Sender name: Give a sender name." in response.content.decode()
    with tenant_context(tenant_a):
        assert JourneyVersion.objects.get(pk=version.pk).status == JourneyVersion.Status.DRAFT

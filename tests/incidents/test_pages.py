"""Incident pages: compliance officers only, foreign and unknown ids answer 404 (every route with an
id), errors land on their fields, and the main path works through the forms."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from incidents.models import Incident
from incidents.urls import urlpatterns

from .helpers import new_incident, officer, patients, read_event

pytestmark = pytest.mark.django_db
ID_ROUTES = [p.name for p in urlpatterns if "incident_id" in str(p.pattern)]


@pytest.fixture
def compliance(member_client):
    return member_client(Role.COMPLIANCE_OFFICER)


@pytest.mark.parametrize("page", ["list", "new"])
def test_compliance_officers_see_the_pages(compliance, page):
    response = compliance.get(reverse(f"incidents:{page}"))
    assert response.status_code == 200
    assert b"<h1>" in response.content


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER])
@pytest.mark.parametrize("page", ["list", "new"])
def test_other_roles_are_refused(member_client, role, page):
    assert member_client(role).get(reverse(f"incidents:{page}")).status_code == 403


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER])
def test_other_roles_are_refused_on_an_incident(member_client, tenant_a, role):
    incident = new_incident(tenant_a, officer(tenant_a))
    client = member_client(role)
    for name in ID_ROUTES:
        method = client.get if name in ("detail", "letter_preview") else client.post
        assert method(reverse(f"incidents:{name}", args=[incident.pk])).status_code == 403, name


def test_foreign_and_unknown_incidents_answer_404(compliance, tenant_b):
    foreign = new_incident(tenant_b, officer(tenant_b))
    assert len(ID_ROUTES) >= 11
    for incident_id in (foreign.pk, uuid.uuid4()):
        for name in ID_ROUTES:
            method = compliance.get if name in ("detail", "letter_preview") else compliance.post
            assert method(reverse(f"incidents:{name}", args=[incident_id])).status_code == 404, name
    with tenant_context(tenant_b):
        assert Incident.objects.get(pk=foreign.pk).status == Incident.Status.OPEN


def test_a_foreign_alert_cannot_open_an_incident(compliance, tenant_b):
    from audit.models import Alert

    with tenant_context(tenant_b):
        alert = Alert.objects.create(tenant=tenant_b, rule="break_glass", severity="critical", summary="x")
    assert compliance.get(reverse("incidents:new") + f"?alert={alert.pk}").status_code == 404
    assert compliance.get(reverse("incidents:new") + "?alert=not-a-uuid").status_code == 404


def test_a_future_discovery_date_is_an_error_on_its_field(compliance):
    response = compliance.post(
        reverse("incidents:new"),
        {
            "title": "Lost laptop",
            "description": "A laptop with exports was lost.",
            "how_discovered": "Staff report",
            "discovered_on": (timezone.localdate() + datetime.timedelta(days=2)).isoformat(),
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["discovered_on"] == ["The discovery date cannot be in the future."]


def test_the_forms_derive_assess_and_show_the_deadlines(compliance, tenant_a):
    read_event(tenant_a, Actor.system("relay"), patients(tenant_a, 2, state="FL"))
    response = compliance.post(
        reverse("incidents:new"),
        {
            "title": "Misdirected export",
            "description": "An export went to the wrong vendor.",
            "how_discovered": "Vendor called",
            "discovered_on": timezone.localdate().isoformat(),
        },
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        incident = Incident.objects.get(title="Misdirected export")
    url = reverse("incidents:affected_derive", args=[incident.pk])
    now = timezone.now()
    form = {
        "derive-since": (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "derive-until": (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "derive-actor_type": "system",
        "derive-actor_id": "relay",
    }
    assert compliance.post(url, form).status_code == 302
    bad = compliance.post(
        reverse("incidents:assessment_save", args=[incident.pk]), {"assessment-probability": "low"}
    )
    assert bad.status_code == 400
    assert "factor_nature" in bad.context["assessment_form"].errors
    page = compliance.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "2 individuals" in page
    assert "164.404(b)" in page
    assert "164.408(c)" in page

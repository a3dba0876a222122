"""POST /api/v1/events: reported conversions, form submissions and page views, and the segment fields
that target them."""

import pytest
from django.utils import timezone

from delivery.models import EngagementEvent
from healthmail.tenants.context import tenant_context
from segmentation import services as segments
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact_id(tenant_a):
    return ContactFactory(
        tenant=tenant_a, email="reporter@patients.example", external_ids={"ehr": "MRN-0042"}
    ).pk


def test_form_submission_by_external_id_is_stored_and_segmentable(api, issue_key, tenant_a, contact_id):
    response = api(issue_key(scopes=["events:write"])).post(
        "/api/v1/events",
        {
            "external_id": {"system": "ehr", "id": "MRN-0042"},
            "kind": "form_submission",
            "label": "intake-form",
        },
    )
    assert response.status_code == 201, response.content
    with tenant_context(tenant_a):
        event = EngagementEvent.objects.get(pk=response.json()["id"])
    assert (event.contact_id, event.kind, event.label) == (contact_id, "form_submission", "intake-form")
    members = segments.segment_member_ids(
        tenant=tenant_a,
        definition={"all": [{"field": "engagement.form_submitted", "op": "within_days", "value": 7}]},
        now=timezone.now(),
    )
    assert set(members) == {contact_id}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"email": "reporter@patients.example", "kind": "open"}, 422),
        ({"email": "reporter@patients.example", "kind": "page_view", "label": "https://x/?name=Jane"}, 422),
        ({"kind": "conversion"}, 422),
        ({"email": "nobody@patients.example", "kind": "conversion"}, 404),
        (
            {
                "email": "reporter@patients.example",
                "kind": "conversion",
                "occurred_at": "2099-01-01T00:00:00Z",
            },
            422,
        ),
    ],
)
def test_bad_reports_are_refused_clearly(api, issue_key, contact_id, body, status):
    response = api(issue_key(scopes=["events:write"])).post("/api/v1/events", body)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"


def test_reporting_needs_the_events_scope(api, issue_key, contact_id):
    response = api(issue_key(scopes=["contacts:read"])).post(
        "/api/v1/events", {"email": "reporter@patients.example", "kind": "conversion"}
    )
    assert response.status_code == 403


def test_foreign_tenant_contact_is_not_found(api, issue_key, tenant_b, contact_id):
    response = api(issue_key(scopes=["events:write"], tenant=tenant_b)).post(
        "/api/v1/events", {"contact_id": str(contact_id), "kind": "conversion"}
    )
    assert response.status_code == 404

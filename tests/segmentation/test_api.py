"""The segments API: scopes, validation errors as problem+json naming the node, masked counts."""

from __future__ import annotations

import pytest

from healthmail.tenants.context import tenant_context
from segmentation.models import Segment
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db
DIABETES = {"all": [{"field": "condition", "op": "in", "value": ["E11.9"]}]}


def test_create_update_and_count(api, issue_key, tenant_a, audience_a):
    client = api(issue_key(scopes=["segments:read", "segments:write", "contacts:phi"]))
    created = client.post(
        "/api/v1/segments", {"name": "Diabetes", "definition": DIABETES}, HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["uses_phi"] is True
    assert body["last_count"] is None
    segment_id = body["id"]

    updated = client.generic(
        "PATCH", f"/api/v1/segments/{segment_id}", '{"definition": {"all": []}, "name": "Everyone"}'
    )
    assert updated.status_code == 200
    assert updated.json()["uses_phi"] is False

    counted = client.post(f"/api/v1/segments/{segment_id}/count")
    assert counted.status_code == 200
    assert counted.json()["count"] == 300
    assert counted.json()["display"] == "300"
    assert client.get(f"/api/v1/segments/{segment_id}").json()["last_count"] == 300


def test_clinical_criteria_need_the_phi_scope(api, issue_key, tenant_a, audience_a):
    """A key that cannot read PHI cannot choose people by it either (tag one patient, count, compare)."""
    client = api(issue_key(scopes=["segments:read", "segments:write"]))
    refused = client.post(
        "/api/v1/segments", {"name": "Diabetes", "definition": DIABETES}, HTTP_IDEMPOTENCY_KEY="k9"
    )
    assert_problem(refused, 403, "phi_scope_required")
    assert_problem(client.post("/api/v1/segments/count", {"definition": DIABETES}), 403, "phi_scope_required")
    everyone = client.post(
        "/api/v1/segments", {"name": "Everyone", "definition": {"all": []}}, HTTP_IDEMPOTENCY_KEY="k10"
    ).json()
    to_clinical = client.generic(
        "PATCH",
        f"/api/v1/segments/{everyone['id']}",
        '{"definition": {"field": "condition", "op": "in", "value": ["E11.9"]}}',
    )
    assert_problem(to_clinical, 403, "phi_scope_required")


def test_zero_is_said_when_the_criteria_use_no_phi(api, issue_key, tenant_a, audience_a):
    client = api(issue_key(scopes=["segments:read"]))
    nobody = {"definition": {"field": "age", "op": "gt", "value": 125}}
    body = client.post("/api/v1/segments/count", nobody).json()
    assert (body["count"], body["empty"], body["exact"]) == (0, True, True)


def test_invalid_definition_answers_422_with_the_path(api, issue_key, tenant_a):
    client = api(issue_key(scopes=["segments:write"]))
    bad = {"name": "Bad", "definition": {"any": [{"field": "age", "op": "eq", "value": "'; DROP TABLE x"}]}}
    body = assert_problem(
        client.post("/api/v1/segments", bad, HTTP_IDEMPOTENCY_KEY="k2"), 422, "invalid_definition"
    )
    assert body["errors"] == [{"path": "/any/0/value", "message": "must be a whole number from 0 to 130"}]


def test_small_counts_are_masked_for_api_clients(api, issue_key, tenant_a, audience_a):
    client = api(issue_key(scopes=["segments:read"]))
    tiny = {
        "definition": {
            "all": [{"field": "age", "op": "eq", "value": 40}, {"field": "state", "op": "eq", "value": "CA"}]
        }
    }
    body = client.post("/api/v1/segments/count", tiny).json()
    assert body["count"] is None
    assert body["display"] == "fewer than 11"


def test_scopes_are_enforced(api, issue_key, tenant_a):
    reader = api(issue_key(scopes=["segments:read"]))
    assert_problem(
        reader.post("/api/v1/segments", {"name": "x", "definition": {"all": []}}, HTTP_IDEMPOTENCY_KEY="k3"),
        403,
    )
    contacts_only = api(issue_key(scopes=["contacts:read", "contacts:phi"]))
    assert_problem(contacts_only.post("/api/v1/segments/count", {"definition": {"all": []}}), 403)


def test_list_is_cursor_pages_that_reach_every_segment(api, issue_key, tenant_a):
    """The list once answered a plain array cut at 200: the 201st segment was unreachable."""
    with tenant_context(tenant_a):
        made = Segment.objects.bulk_create(
            Segment(tenant=tenant_a, name=f"Segment {number:03}", definition={"all": []})
            for number in range(201)
        )
    client = api(issue_key(scopes=["segments:read"]))
    seen: list[str] = []
    pages = 0
    url = "/api/v1/segments?page_size=100"
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.content
        body = page.json()
        assert set(body) == {"next", "previous", "results"}
        seen += [segment["id"] for segment in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(str(segment.pk) for segment in made)


def test_list_refuses_a_page_size_out_of_range(api, issue_key, tenant_a):
    client = api(issue_key(scopes=["segments:read"]))
    assert_problem(client.get("/api/v1/segments?page_size=501"), 422)

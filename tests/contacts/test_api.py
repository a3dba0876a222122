"""/api/v1/contacts: upsert one and bulk, read masked or not by scope, delete, audited reads."""

from __future__ import annotations

import json
import uuid

import pytest

from audit.models import AuditEvent
from contacts.models import Contact
from contacts.services import ContactInput
from healthmail.api.models import IdempotencyRecord
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

WRITE = ["contacts:write"]
WRITE_PHI = ["contacts:write", "contacts:phi"]
READ = ["contacts:read"]
READ_PHI = ["contacts:read", "contacts:phi"]


@pytest.fixture
def client_with(api, issue_key):
    return lambda scopes, tenant=None: api(issue_key(scopes=scopes, tenant=tenant))


def phi_reads(tenant) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action="phi.read").order_by("id"))


def test_upsert_creates_then_updates_and_answers_ids_only(tenant_a, client_with):
    client = client_with(WRITE_PHI)
    body = {"email": "api.one@example.org", "first_name": "Synthetic", "birth_date": "1980-04-02"}
    created = client.post("/api/v1/contacts", body)
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "created"
    again = client.post("/api/v1/contacts", {**body, "last_name": "Api"})
    assert again.status_code == 200
    assert again.json() == {"index": 0, "status": "updated", "id": created.json()["id"], "errors": []}
    assert b"api.one" not in again.content
    assert b"Synthetic" not in again.content


def test_upsert_answers_a_key_without_phi_scope_accepted_whether_new_or_not(tenant_a, client_with):
    client = client_with(WRITE)
    body = {"email": "api.two@example.org", "clinical": {"conditions": ["E11.9"]}}
    answers = [client.post("/api/v1/contacts", body) for _ in range(3)]  # created, unchanged, unchanged
    assert {(a.status_code, a.json()["status"]) for a in answers} == {(200, "accepted")}
    assert len({a.json()["id"] for a in answers}) == 1
    with tenant_context(tenant_a):
        assert Contact.objects.count() == 1


def test_idempotent_replay_stores_no_phi(tenant_a, client_with):
    client = client_with(WRITE)
    body = {"email": "replay@example.org", "last_name": "Replay"}
    first = client.post("/api/v1/contacts", body, HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post("/api/v1/contacts", body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    with tenant_context(tenant_a):
        stored = json.dumps(IdempotencyRecord.objects.get(key="k-1").response_body)
        assert Contact.objects.count() == 1
    assert "replay" not in stored.lower()


def test_invalid_fields_answer_422_naming_fields_not_values(tenant_a, client_with):
    response = client_with(WRITE).post(
        "/api/v1/contacts",
        {"email": "x@example.org", "birth_date": "2021-02-30", "postal_address": {"state": "QQ"}},
    )
    body = assert_problem(response, 422, "validation_failed")
    assert set(body["errors"]) == {"birth_date", "postal_address.state"}
    assert "2021-02-30" not in response.content.decode()


def test_mass_assignment_is_refused(tenant_a, tenant_b, client_with):
    response = client_with(WRITE).post(
        "/api/v1/contacts", {"email": "x@example.org", "tenant_id": str(tenant_b.pk), "deleted_at": None}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert set(body["errors"]) == {"tenant_id", "deleted_at"}
    with tenant_context(tenant_b):
        assert Contact.objects.count() == 0


def test_bulk_returns_one_result_per_item_in_order(tenant_a, client_with):
    items = [
        {"email": "b1@example.org"},
        {"email": "not an email"},
        "not an object",
        {"email": "b1@example.org", "last_name": "Again"},
        {"first_name": "no key"},
    ]
    response = client_with(WRITE_PHI).post("/api/v1/contacts/bulk", {"contacts": items})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == ["created", "error", "error", "updated", "error"]
    assert results[0]["id"] == results[3]["id"]
    assert results[1]["errors"] == [{"field": "email", "message": "is not a valid email address"}]
    counts = {"created": 1, "updated": 1, "unchanged": 0, "accepted": 0, "error": 3}
    assert response.json()["counts"] == counts
    # A key without the PHI scope is told only which rows were written.
    again = client_with(WRITE).post("/api/v1/contacts/bulk", {"contacts": items})
    statuses = [r["status"] for r in again.json()["results"]]
    assert statuses == ["accepted", "error", "error", "accepted", "error"]


def test_bulk_over_a_thousand_is_413(tenant_a, client_with):
    items = [{"email": f"p{i}@example.org"} for i in range(1001)]
    response = client_with(WRITE).post("/api/v1/contacts/bulk", {"contacts": items})
    assert_problem(response, 413, "batch_too_large")
    with tenant_context(tenant_a):
        assert Contact.objects.count() == 0


def test_bulk_with_no_list_is_422(tenant_a, client_with):
    assert_problem(client_with(WRITE).post("/api/v1/contacts/bulk", {"contacts": "x"}), 422)


def test_read_is_masked_without_phi_scope_and_audited(tenant_a, client_with, make_contact):
    contact = make_contact(
        tenant_a,
        email="masked.person@example.org",
        first_name="Synthetic",
        last_name="Masked",
        phone="555-010-4477",
        clinical={"conditions": ["B20"]},
        birth_date="1970-01-15",
    )
    response = client_with(READ).get(f"/api/v1/contacts/{contact.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["masked"] is True
    assert body["email"] == "m***@example.org"
    assert body["name"] == "S*** M***"
    assert body["phone"] == "***-***-4477"
    assert body["birth_date"] in {"45-64", "65-89"}
    assert body["clinical"] is None
    assert body["sensitive_categories"] is None
    assert "Masked" not in response.content.decode()
    assert "B20" not in response.content.decode()
    (event,) = phi_reads(tenant_a)
    assert event.details["purpose"] == "api masked detail"
    assert event.details["ids"] == [str(contact.pk)]
    assert event.actor_type == "api_key"


def test_read_with_phi_scope_is_unmasked_with_clinical(tenant_a, client_with, make_contact):
    contact = make_contact(tenant_a, email="open@example.org", clinical={"conditions": ["F11.20"]})
    body = client_with(READ_PHI).get(f"/api/v1/contacts/{contact.pk}").json()
    assert body["masked"] is False
    assert body["email"] == "open@example.org"
    assert body["clinical"] == {"conditions": ["F11.20"]}
    assert body["sensitive_categories"] == ["Substance use disorder (42 CFR Part 2)"]
    (event,) = phi_reads(tenant_a)
    assert "clinical" in event.details["fields"]


def test_list_is_paginated_masked_and_one_audit_event_per_page(tenant_a, client_with, make_contact):
    for number in range(3):
        make_contact(tenant_a, email=f"list{number}@example.org")
    client = client_with(READ)
    first = client.get("/api/v1/contacts?page_size=2").json()
    assert len(first["results"]) == 2
    assert all(item["email"].startswith("l***@") for item in first["results"])
    second = client.get(first["next"].replace("http://testserver", "")).json()
    assert len(second["results"]) == 1
    events = phi_reads(tenant_a)
    assert [len(e.details["ids"]) for e in events] == [2, 1]
    assert {e.details["purpose"] for e in events} == {"api masked list"}


def test_read_scope_is_required(tenant_a, client_with, make_contact):
    contact = make_contact(tenant_a)
    assert_problem(client_with(WRITE).get(f"/api/v1/contacts/{contact.pk}"), 403)
    assert_problem(client_with(READ).post("/api/v1/contacts", {"email": "x@example.org"}), 403)
    assert phi_reads(tenant_a) == []


def test_delete_takes_the_contact_off_lists(tenant_a, client_with, make_contact):
    contact = make_contact(tenant_a)
    client = client_with([*READ, *WRITE])
    assert client.generic("DELETE", f"/api/v1/contacts/{contact.pk}").status_code == 204
    assert_problem(client.get(f"/api/v1/contacts/{contact.pk}"), 404)
    assert client.get("/api/v1/contacts").json()["results"] == []
    with tenant_context(tenant_a):
        assert Contact.objects.get(pk=contact.pk).deleted_at is not None
        assert AuditEvent.objects.filter(action="contacts.delete", target_id=str(contact.pk)).count() == 1


def test_foreign_tenant_contact_is_404_like_a_random_id(tenant_a, tenant_b, client_with, upsert):
    (foreign,) = upsert(tenant_b, ContactInput(email="foreign@example.org"))
    client = client_with([*READ_PHI, *WRITE])
    for method in ("GET", "DELETE"):
        foreign_answer = client.generic(method, f"/api/v1/contacts/{foreign.contact_id}")
        missing_answer = client.generic(method, f"/api/v1/contacts/{uuid.uuid4()}")
        assert assert_problem(foreign_answer, 404)["detail"] == assert_problem(missing_answer, 404)["detail"]
    with tenant_context(tenant_b):
        assert Contact.objects.get(pk=foreign.contact_id).deleted_at is None
    # A foreign tenant's email upserted from A makes a new contact in A, never touches B's.
    response = client.post("/api/v1/contacts", {"email": "foreign@example.org"})
    assert response.json()["status"] == "created"
    assert response.json()["id"] != str(foreign.contact_id)

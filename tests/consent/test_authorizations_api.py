"""Authorizations API: an EHR records a paper form signed last month, reads where it stands, revokes
it or records its end event; scopes, foreign tenants, every defect in one answer, the schema."""

from __future__ import annotations

import base64
import datetime
import zoneinfo

import pytest
from django.utils import timezone

from consent import services
from consent.authorization_records import tenant_today
from consent.gate import may_send, may_send_batch
from consent.models import Authorization, AuthorizationAttachment
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem, audit_events

from .conftest import COMPLETE_ELEMENTS, evidence, new_contact, new_text
from .scenarios import topic_for

pytestmark = pytest.mark.django_db

SCAN = b"%PDF-1.4\n% scanned consent form\n"
DOCUMENT = {k: v for k, v in COMPLETE_ELEMENTS.items() if k != "expiry_days"}


def _body(contact, **overrides) -> dict:
    today = timezone.localdate()
    return {
        "contact_id": str(contact.pk),
        "kind": "marketing",
        "document": {"title": "Marketing authorization (paper)", **DOCUMENT},
        "signer": {"name": "Pat Example", "signed_on": str(today - datetime.timedelta(days=30))},
        "expires_on": str(today + datetime.timedelta(days=20)),
        "source": "paper",
        "attachment": {"content_type": "application/pdf", "content_base64": base64.b64encode(SCAN).decode()},
        **overrides,
    }


@pytest.fixture
def opted_in(tenant_a):
    contact = new_contact(tenant_a)
    services.consent_grant(
        tenant=tenant_a, contact=contact, topic=topic_for(tenant_a, "marketing"), evidence=evidence()
    )
    return contact


def _decision(tenant, contact):
    topic = topic_for(tenant, "marketing")
    single = may_send(contact=contact, purpose="marketing", uses_phi=True, topic=topic)
    batch = may_send_batch(
        tenant=tenant, contact_ids=[contact.pk], purpose="marketing", uses_phi=True, topic=topic
    )
    assert batch[contact.pk] == single
    return single


def _clock(monkeypatch, tenant, day: datetime.date, hour: int) -> None:
    instant = datetime.datetime.combine(day, datetime.time(hour), tzinfo=zoneinfo.ZoneInfo(tenant.timezone))
    monkeypatch.setattr(timezone, "now", lambda: instant)


def test_an_ehr_records_a_paper_form_signed_last_month_and_marketing_follows_its_date(
    api, issue_key, tenant_a, opted_in, monkeypatch
):
    client = api(issue_key(scopes=["consent:write", "consent:read"]))
    today = tenant_today(tenant_a)
    last_day = today + datetime.timedelta(days=20)
    body = _body(opted_in, expires_on=str(last_day))
    body["signer"]["signed_on"] = str(today - datetime.timedelta(days=30))
    response = client.post("/api/v1/authorizations", body)
    assert response.status_code == 201, response.content
    recorded = response.json()
    assert (recorded["status"], recorded["created"]) == ("valid", True)
    assert "Pat" not in response.content.decode()  # replays are stored unencrypted: no PHI in the answer
    with tenant_context(tenant_a):
        authorization = Authorization.objects.get(pk=recorded["id"])
        assert authorization.form_source == "paper"
        assert authorization.recorded_by.startswith("api_key:")
        assert AuthorizationAttachment.objects.filter(authorization=authorization).count() == 1
    assert audit_events(tenant=tenant_a, action="authorization.record")

    assert _decision(tenant_a, opted_in).allowed
    _clock(monkeypatch, tenant_a, last_day, 23)
    assert _decision(tenant_a, opted_in).allowed
    _clock(monkeypatch, tenant_a, last_day + datetime.timedelta(days=1), 0)
    refused = _decision(tenant_a, opted_in)
    assert (refused.code, refused.on) == ("authorization_expired", last_day)

    read = client.get(f"/api/v1/contacts/{opted_in.pk}/authorizations")
    assert read.status_code == 200, read.content
    assert read.json()["marketing"] == {
        "allowed": False,
        "code": "authorization_expired",
        "reason": refused.reason,
        "defects": [],
        "on": str(last_day),
    }
    assert [d["code"] for d in read.json()["authorizations"][0]["defects"]] == ["expired"]
    assert audit_events(tenant=tenant_a, action="phi.read")


def test_an_ehr_records_the_end_event_and_marketing_stops(api, issue_key, tenant_a, opted_in):
    client = api(issue_key(scopes=["consent:write", "consent:read"]))
    body = _body(opted_in, expires_on=None, expiry_event="Leaving the plan")
    response = client.post("/api/v1/authorizations", body)
    assert response.status_code == 201, response.content
    assert _decision(tenant_a, opted_in).allowed
    today = tenant_today(tenant_a)
    url = f"/api/v1/authorizations/{response.json()['id']}/end-event"
    ended = client.post(url, {"occurred_on": str(today)})
    assert ended.status_code == 200, ended.content
    assert ended.json()["status"] == "expired"
    refused = _decision(tenant_a, opted_in)
    assert (refused.code, refused.on) == ("authorization_expired", today)


def test_a_revocation_received_by_mail_is_recorded_with_its_date(api, issue_key, tenant_a, opted_in):
    client = api(issue_key(scopes=["consent:write"]))
    recorded = client.post("/api/v1/authorizations", _body(opted_in)).json()
    received = tenant_today(tenant_a) - datetime.timedelta(days=2)
    url = f"/api/v1/authorizations/{recorded['id']}/revoke"
    response = client.post(url, {"revoked_on": str(received), "received_via": "mail"})
    assert response.status_code == 200, response.content
    assert response.json() == {"id": recorded["id"], "status": "revoked", "changed": True}
    refused = _decision(tenant_a, opted_in)
    assert (refused.code, refused.on) == ("authorization_revoked", received)
    future = str(tenant_today(tenant_a) + datetime.timedelta(days=1))
    again = client.post(f"/api/v1/authorizations/{recorded['id']}/revoke", {"revoked_on": future})
    assert_problem(again, 400, "revoked_on_invalid")


def test_a_defective_form_is_refused_with_every_defect(api, issue_key, tenant_a, opted_in):
    client = api(issue_key(scopes=["consent:write"]))
    document = {**DOCUMENT, "recipients": "", "redisclosure_statement": " "}
    response = client.post(
        "/api/v1/authorizations",
        _body(opted_in, document=document, combined_with=["treatment_consent"], conditioned_on=["treatment"]),
    )
    body = assert_problem(response, 422, "authorization_defective")
    assert [d["code"] for d in body["defects"]] == [
        "missing_recipients",
        "missing_redisclosure_statement",
        "compound_authorization",
        "conditioning_prohibited",
    ]
    assert all(d["paragraph"].startswith("45 CFR 164.508(") and d["message"] for d in body["defects"])
    with tenant_context(tenant_a):
        assert not Authorization.objects.exists()


def test_a_published_document_may_be_referenced(api, issue_key, tenant_a, opted_in):
    text = new_text(tenant_a)
    client = api(issue_key(scopes=["consent:write"]))
    body = _body(opted_in, text_id=str(text.pk), expires_on=None)
    del body["document"]
    response = client.post("/api/v1/authorizations", body)
    assert response.status_code == 201, response.content
    with tenant_context(tenant_a):
        authorization = Authorization.objects.get(pk=response.json()["id"])
    # The document's "one year after signing", counted from the date on the form.
    assert authorization.expires_on == authorization.signed_on + datetime.timedelta(days=365)


def test_the_same_external_reference_twice_returns_the_first(api, issue_key, tenant_a, opted_in):
    client = api(issue_key(scopes=["consent:write"]))
    first = client.post("/api/v1/authorizations", _body(opted_in, external_reference="ehr-form-77"))
    second = client.post("/api/v1/authorizations", _body(opted_in, external_reference="ehr-form-77"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]


def test_a_foreign_document_or_contact_is_not_found(api, issue_key, tenant_a, tenant_b, opted_in):
    client = api(issue_key(scopes=["consent:write"]))
    foreign_text = new_text(tenant_b)
    body = _body(opted_in, text_id=str(foreign_text.pk))
    del body["document"]
    assert_problem(client.post("/api/v1/authorizations", body), 404, "text_not_found")
    foreign_contact = new_contact(tenant_b)
    assert_problem(client.post("/api/v1/authorizations", _body(foreign_contact)), 404, "contact_not_found")
    with tenant_context(tenant_b):
        assert not Authorization.objects.exists()


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("post", "/api/v1/authorizations", "consent:write"),
        ("get", "/api/v1/contacts/{contact}/authorizations", "consent:read"),
    ],
)
def test_each_route_needs_its_scope(api, issue_key, tenant_a, opted_in, method, path, scope):
    wrong = [s for s in ("contacts:read", "consent:read", "consent:write") if s != scope]
    client = api(issue_key(scopes=wrong))
    url = path.format(contact=opted_in.pk)
    response = client.post(url, _body(opted_in)) if method == "post" else client.get(url)
    assert_problem(response, 403)
    allowed = api(issue_key(scopes=[scope]))
    response = allowed.post(url, _body(opted_in)) if method == "post" else allowed.get(url)
    assert response.status_code in (200, 201), response.content


def test_the_schema_documents_the_authorization_endpoints(api):
    schema = api(None).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "post" in paths["/api/v1/authorizations"]
    assert "422" in paths["/api/v1/authorizations"]["post"]["responses"]
    assert "post" in paths["/api/v1/authorizations/{authorization_id}/revoke"]
    assert "post" in paths["/api/v1/authorizations/{authorization_id}/end-event"]
    assert "get" in paths["/api/v1/contacts/{contact_id}/authorizations"]
    components = schema["components"]["schemas"]
    assert "signed_on" in components["Signer"]["properties"]


def test_a_malformed_attachment_is_refused(api, issue_key, opted_in):
    client = api(issue_key(scopes=["consent:write"]))
    body = _body(opted_in, attachment={"content_type": "application/pdf", "content_base64": "not base64!"})
    assert_problem(client.post("/api/v1/authorizations", body), 400, "attachment_invalid")


def test_a_queued_marketing_message_with_phi_is_refused_the_day_after_with_the_reason(
    api, issue_key, tenant_a, opted_in, monkeypatch
):
    """The delivery worker's gate check, right before sending, reads the recorded authorization."""
    from delivery.engine.gate import gate_messages
    from delivery.models import Stream
    from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many

    client = api(issue_key(scopes=["consent:write"]))
    last_day = tenant_today(tenant_a) + datetime.timedelta(days=3)
    assert client.post("/api/v1/authorizations", _body(opted_in, expires_on=str(last_day))).status_code == 201
    [message] = message_enqueue_many(
        tenant=tenant_a,
        stream=Stream.MARKETING,
        source_type="test",
        source_id="authz",
        purpose="marketing",
        topic="marketing_newsletters",
        uses_phi=True,
        recipients=[OutboxRecipient(opted_in.pk, "patient@example.org")],
        content=RenderedContent(subject="News", html="<p>News</p>", text="News"),
    )
    _clock(monkeypatch, tenant_a, last_day, 22)
    with tenant_context(tenant_a):
        assert gate_messages(tenant=tenant_a, messages=[message])[message.pk].allowed
    _clock(monkeypatch, tenant_a, last_day + datetime.timedelta(days=1), 1)
    with tenant_context(tenant_a):
        refused = gate_messages(tenant=tenant_a, messages=[message])[message.pk]
    assert not refused.allowed
    assert refused.reason.startswith("authorization_expired: ")
    assert str(last_day) not in refused.reason  # the reason is stored with the message: no PHI


def test_a_form_giving_its_end_only_as_a_date_is_recorded_with_it_in_words(
    api, issue_key, tenant_a, opted_in
):
    """The document's expiration words may be left out when expires_on says it (was a 500)."""
    client = api(issue_key(scopes=["consent:write"]))
    last_day = tenant_today(tenant_a) + datetime.timedelta(days=20)
    body = _body(opted_in, expires_on=str(last_day))
    body["document"] = {**body["document"], "expiration": ""}
    response = client.post("/api/v1/authorizations", body)
    assert response.status_code == 201, response.content
    with tenant_context(tenant_a):
        text = Authorization.objects.select_related("text").get(pk=response.json()["id"]).text
    assert (
        text.expiration
        == f"This authorization ends on {last_day.strftime('%B')} {last_day.day}, {last_day.year}."
    )

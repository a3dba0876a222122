"""Staff consent pages: who may see what, foreign ids answer 404, changes are audited, reports hide
small counts."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from consent import services
from consent.models import AuthorizationText, Suppression
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events

from .conftest import COMPLETE_ELEMENTS, evidence, new_contact, sign

pytestmark = pytest.mark.django_db

ADMIN, MARKETER, COMPLIANCE, CLINICAL = "tenant_admin", "marketer", "compliance_officer", "clinical_reviewer"


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("consent:text_list", {ADMIN, COMPLIANCE}),
        ("consent:text_create", {ADMIN, COMPLIANCE}),
        ("consent:suppression_list", {ADMIN, COMPLIANCE}),
        ("consent:settings", {ADMIN, COMPLIANCE}),
        ("consent:reports", {MARKETER, COMPLIANCE}),
    ],
)
@pytest.mark.parametrize("role", [ADMIN, MARKETER, COMPLIANCE, CLINICAL])
def test_page_permissions(member_client, name, allowed, role):
    response = member_client(role).get(reverse(name))
    assert response.status_code == (200 if role in allowed else 403)


def test_contact_history_shows_the_timeline(member_client, tenant_a, contact, topics, text):
    services.consent_grant(
        tenant=tenant_a, contact=contact, topic=topics["research"], evidence=evidence(source="paper")
    )
    sign(tenant_a, contact, text)
    body = member_client(MARKETER).get(reverse("consent:contact_consent", args=[contact.pk])).content.decode()
    assert "Granted: Research studies" in body
    assert "Signed: Marketing authorization" in body
    assert "Paper form" in body
    assert "Pat Example" not in body  # the signer's name is PHI and not shown here
    assert "Record consent received" not in body  # marketers cannot record changes


def test_a_foreign_or_unknown_contact_is_not_found(member_client, tenant_b):
    foreign = new_contact(tenant_b)
    client = member_client(COMPLIANCE)
    for contact_id in (foreign.pk, uuid.uuid4()):
        assert client.get(reverse("consent:contact_consent", args=[contact_id])).status_code == 404
        response = client.post(
            reverse("consent:contact_consent_record", args=[contact_id]),
            {"action": "granted", "source": "paper", "occurred_on": "2024-01-01"},
        )
        assert response.status_code == 404


def test_compliance_records_paper_consent(member_client, tenant_a, contact, topics):
    client = member_client(COMPLIANCE)
    response = client.post(
        reverse("consent:contact_consent_record", args=[contact.pk]),
        {
            "topic": topics["marketing_newsletters"].pk,
            "action": "granted",
            "source": "paper",
            "occurred_on": "2024-01-05",
        },
    )
    assert response.status_code == 302
    assert (
        services.topic_states(tenant=tenant_a, contact=contact)[topics["marketing_newsletters"].pk]
        == "granted"
    )
    [event] = audit_events(tenant=tenant_a, action="consent.granted")
    assert event.actor_type == "user"


def test_publishing_a_text_names_the_missing_element(member_client, tenant_a):
    client = member_client(COMPLIANCE)
    form = {"kind": "marketing", "title": "Newsletter authorization", **COMPLETE_ELEMENTS, "recipients": ""}
    response = client.post(reverse("consent:text_create"), form)
    assert response.status_code == 400
    assert "who will receive the information" in response.content.decode()
    form["recipients"] = "Our email provider."
    assert client.post(reverse("consent:text_create"), form).status_code == 302
    with tenant_context(tenant_a):
        assert AuthorizationText.objects.get().version == 1
    assert audit_events(tenant=tenant_a, action="authorization_text.create")


def test_suppression_add_and_remove_are_audited(member_client, tenant_a):
    client = member_client(ADMIN)
    response = client.post(
        reverse("consent:suppression_list"), {"email": "x@example.org", "reason": "legal_request"}
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        entry = Suppression.objects.get()
    assert entry.email_index is not None
    assert entry.contact_id is None
    assert b"x@example.org" not in bytes(entry.email_index)
    client.post(reverse("consent:suppression_remove", args=[entry.pk]), {"reason": "request withdrawn"})
    with tenant_context(tenant_a):
        entry.refresh_from_db()
    assert entry.removed_reason == "request withdrawn"
    assert len(audit_events(tenant=tenant_a, action__startswith="suppression.")) == 2


def test_reports_never_show_a_small_count_exactly(member_client, tenant_a, topics):
    """A marketer (no PHI access) sees consent counts through the disclosure policy: masked, or a
    noisy count rounded to 10 - never the 3 it is."""
    topic = topics["marketing_newsletters"]
    for _ in range(3):
        services.consent_grant(
            tenant=tenant_a, contact=new_contact(tenant_a), topic=topic, evidence=evidence()
        )
    body = member_client(MARKETER).get(reverse("consent:reports")).content.decode()
    assert "fewer than 11" in body or "0</td>" in body
    assert "<td>3</td>" not in body


def test_settings_page_saves_states_and_mode(member_client, tenant_a):
    client = member_client(ADMIN)
    response = client.post(
        reverse("consent:settings"),
        {"operating_states": "wa, ca", "state_mode": "per_contact", "reminder_days_before_expiry": "45"},
    )
    assert response.status_code == 302
    current = services.consent_settings_get(tenant=tenant_a)
    assert (current.operating_states, current.state_mode, current.reminder_days_before_expiry) == (
        ["CA", "WA"],
        "per_contact",
        45,
    )
    assert audit_events(tenant=tenant_a, action="consent.settings_change")


def test_signing_link_page_is_not_cached(member_client, tenant_a, contact, text):
    response = member_client(COMPLIANCE).post(
        reverse("consent:contact_signing_link", args=[contact.pk]), {"text": text.pk}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "/p/authorize/" in response.content.decode()


def _revoked_yesterday(tenant, contact, text):
    import datetime

    from consent import authorizations
    from consent.authorization_records import tenant_today

    authorization, _ = sign(tenant, contact, text)
    yesterday = tenant_today(tenant) - datetime.timedelta(days=1)
    received = datetime.datetime.combine(yesterday, datetime.time(12), tzinfo=datetime.UTC)
    authorizations.authorization_revoke(
        tenant=tenant, authorization=authorization, evidence=evidence(source="paper", occurred_at=received)
    )
    return received.date()


@pytest.mark.parametrize(("role", "date_shown"), [(MARKETER, False), (COMPLIANCE, True)])
def test_the_contact_page_says_why_marketing_is_refused(
    member_client, tenant_a, contact, text, role, date_shown
):
    url = reverse("consent:contact_consent", args=[contact.pk])
    assert "No authorization" not in member_client(role).get(url).content.decode()
    assert "<code>no_authorization</code>" in member_client(role).get(url).content.decode()
    revoked_on = _revoked_yesterday(tenant_a, contact, text)
    body = member_client(role).get(url).content.decode()
    assert "<code>authorization_revoked</code>" in body
    assert (
        f"{revoked_on:%Y-%m-%d}" in body.split('data-testid="authorization-standing"')[1][:600]
    ) is date_shown


def _record_form(text, **values) -> dict:
    import datetime

    from django.utils import timezone

    today = timezone.localdate()
    return {
        "text": str(text.pk),
        "signer_name": "Pat Example",
        "signed_on": str(today - datetime.timedelta(days=20)),
        "expires_on": str(today + datetime.timedelta(days=100)),
        "initiated_by": "covered_entity",
        "form_source": "paper",
        **values,
    }


def test_compliance_records_a_paper_authorization_with_its_scan(member_client, tenant_a, contact, text):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from consent.models import Authorization, AuthorizationAttachment

    url = reverse("consent:contact_authorization_record", args=[contact.pk])
    scan = SimpleUploadedFile("form.pdf", b"%PDF-1.4 scan", content_type="application/pdf")
    response = member_client(COMPLIANCE).post(url, {**_record_form(text), "scan": scan}, follow=True)
    assert "The signed authorization is recorded." in response.content.decode()
    with tenant_context(tenant_a):
        authorization = Authorization.objects.get(contact=contact)
        assert authorization.form_source == "paper"
        assert authorization.recorded_by.startswith("user:")
        assert AuthorizationAttachment.objects.filter(authorization=authorization).count() == 1
    assert audit_events(tenant=tenant_a, action="authorization.record")


def test_a_defective_paper_form_shows_every_defect(member_client, tenant_a, contact, text):
    from consent.models import Authorization

    url = reverse("consent:contact_authorization_record", args=[contact.pk])
    form = _record_form(text, signer_name="", by_representative="on", combined_with=["treatment_consent"])
    body = member_client(COMPLIANCE).post(url, form, follow=True).content.decode()
    assert "missing_signature" in body
    assert "missing_representative_authority" in body
    assert "compound_authorization" in body
    with tenant_context(tenant_a):
        assert not Authorization.objects.exists()


@pytest.mark.parametrize("role", [MARKETER, CLINICAL])
def test_only_consent_managers_record_authorizations(member_client, tenant_a, contact, text, role):
    url = reverse("consent:contact_authorization_record", args=[contact.pk])
    assert member_client(role).post(url, _record_form(text)).status_code == 403


def test_recording_for_a_foreign_contact_is_not_found(member_client, tenant_a, tenant_b, text):
    foreign = new_contact(tenant_b)
    for contact_id in (foreign.pk, uuid.uuid4()):
        url = reverse("consent:contact_authorization_record", args=[contact_id])
        assert member_client(COMPLIANCE).post(url, _record_form(text)).status_code == 404


def _paper_with_event(tenant, contact, text):
    import datetime

    from consent import authorization_records as records

    today = records.tenant_today(tenant)
    authorization, _ = records.authorization_record(
        tenant=tenant,
        contact=contact,
        text=text,
        signature=records.Signature("Pat Example", today - datetime.timedelta(days=5)),
        circumstances=records.Circumstances(form_source="paper", expiry_event="Leaving the plan"),
        evidence=evidence(source="paper"),
        submission_key=uuid.uuid4().hex,
    )
    return authorization, today


def test_compliance_records_the_end_event_and_marks_a_form_false(member_client, tenant_a, contact, text):
    from consent.models import Authorization

    authorization, today = _paper_with_event(tenant_a, contact, text)
    url = reverse("consent:contact_authorization_end", args=[contact.pk, authorization.pk])
    client = member_client(COMPLIANCE)
    assert (
        "Record the end event"
        in client.get(reverse("consent:contact_consent", args=[contact.pk])).content.decode()
    )
    client.post(url, {"occurred_on": str(today)})
    with tenant_context(tenant_a):
        authorization.refresh_from_db()
    assert (authorization.status, authorization.expiry_event_occurred_on) == ("expired", today)
    other, _ = _paper_with_event(tenant_a, contact, text)
    client.post(
        reverse("consent:contact_authorization_end", args=[contact.pk, other.pk]), {"reason": "known_false"}
    )
    with tenant_context(tenant_a):
        assert Authorization.objects.get(pk=other.pk).status == "invalid"
    assert audit_events(tenant=tenant_a, action="authorization.mark_false")


def test_ending_an_authorization_needs_the_role_and_the_tenant(
    member_client, tenant_a, tenant_b, contact, text
):
    authorization, today = _paper_with_event(tenant_a, contact, text)
    url = reverse("consent:contact_authorization_end", args=[contact.pk, authorization.pk])
    assert member_client(MARKETER).post(url, {"occurred_on": str(today)}).status_code == 403
    foreign_contact = new_contact(tenant_b)
    foreign, _ = _paper_with_event(tenant_b, foreign_contact, new_text_for(tenant_b))
    foreign_url = reverse("consent:contact_authorization_end", args=[foreign_contact.pk, foreign.pk])
    assert member_client(COMPLIANCE).post(foreign_url, {"occurred_on": str(today)}).status_code == 404
    with tenant_context(tenant_b):
        foreign.refresh_from_db()
    assert foreign.status == "valid"


def new_text_for(tenant):
    from .conftest import new_text

    return new_text(tenant)

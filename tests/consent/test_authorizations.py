"""HIPAA authorizations: every required element (45 CFR 164.508(c)), signing, double submission,
revocation, waiting periods, expiry and renewal reminders."""

from __future__ import annotations

import datetime

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from consent import authorizations, services, state_rules
from consent.authorization_records import AuthorizationDefective, day_end
from consent.authorizations import AuthorizationIncomplete
from consent.models import (
    AUTHORIZATION_TEXT_ELEMENTS,
    MEDIA_TEXT_ELEMENTS,
    Authorization,
    AuthorizationEvent,
    AuthorizationKind,
    AuthorizationText,
)
from delivery.models import SenderDomain
from healthmail.sysmail.models import SystemMail
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events
from tests.delivery.patient_mail import patient_mail, patient_sender

from .conftest import COMPLETE_ELEMENTS, MEDIA_ELEMENTS, evidence, new_contact, new_text, sign, staff_actor

pytestmark = pytest.mark.django_db


def _valid_count(tenant) -> int:
    with tenant_context(tenant):
        return Authorization.objects.filter(status="valid").count()


@pytest.mark.parametrize("element", list(AUTHORIZATION_TEXT_ELEMENTS))
def test_a_text_missing_an_element_cannot_be_published(tenant_a, element):
    with pytest.raises(AuthorizationIncomplete) as refused:
        new_text(tenant_a, **{element: "   "})
    assert refused.value.code == f"missing_{element}"
    assert AUTHORIZATION_TEXT_ELEMENTS[element] in refused.value.message
    with tenant_context(tenant_a):
        assert not AuthorizationText.objects.exists()


@pytest.mark.parametrize("element", list(AUTHORIZATION_TEXT_ELEMENTS))
def test_the_database_itself_refuses_a_text_missing_an_element(tenant_a, element):
    fields = {k: v for k, v in COMPLETE_ELEMENTS.items() if k in AUTHORIZATION_TEXT_ELEMENTS}
    fields[element] = ""
    with tenant_context(tenant_a), pytest.raises(IntegrityError), transaction.atomic():
        AuthorizationText.objects.create(tenant=tenant_a, kind="marketing", version=1, title="t", **fields)


@pytest.mark.parametrize("element", list(MEDIA_TEXT_ELEMENTS))
def test_media_consent_needs_use_distribution_and_duration(tenant_a, element):
    with pytest.raises(AuthorizationIncomplete) as refused:
        new_text(tenant_a, kind=AuthorizationKind.MEDIA, **{element: ""})
    assert refused.value.code == f"missing_{element}"
    assert new_text(tenant_a, kind=AuthorizationKind.MEDIA).kind == "media"


def test_remuneration_must_be_stated_when_involved(tenant_a):
    with pytest.raises(AuthorizationIncomplete) as refused:
        new_text(tenant_a, remuneration_involved=True, remuneration_statement="")
    assert refused.value.code == "missing_remuneration_statement"
    text = new_text(tenant_a, remuneration_involved=True, remuneration_statement="A drug maker pays us.")
    assert text.remuneration_involved


@pytest.mark.parametrize(
    ("defect", "overrides"),
    [
        ("missing_signature", {"signer_name": "  "}),
        ("missing_signature_date", {"signed_on": None}),
        ("missing_intent", {"intent_confirmed": False}),
        ("missing_representative_authority", {"by_representative": True, "representative_authority": ""}),
    ],
)
def test_a_signature_missing_an_element_is_not_recorded(tenant_a, contact, text, defect, overrides):
    with pytest.raises(AuthorizationDefective) as refused:
        sign(tenant_a, contact, text, **overrides)
    assert refused.value.code == "authorization_defective"
    assert [d["code"] for d in refused.value.extra["defects"]] == [defect]
    assert _valid_count(tenant_a) == 0


def test_every_signature_defect_is_reported_at_once(tenant_a, contact, text):
    with pytest.raises(AuthorizationDefective) as refused:
        sign(tenant_a, contact, text, signer_name="", intent_confirmed=False, by_representative=True)
    assert [d["code"] for d in refused.value.extra["defects"]] == [
        "missing_intent",
        "missing_signature",
        "missing_representative_authority",
    ]


def test_a_minor_needs_a_personal_representative(tenant_a, text):
    minor = new_contact(tenant_a, is_minor=True)
    with pytest.raises(AuthorizationDefective) as refused:
        sign(tenant_a, minor, text)
    assert [d["code"] for d in refused.value.extra["defects"]] == ["missing_representative_authority"]
    authorization, created = sign(tenant_a, minor, text, representative_authority="Parent of the minor")
    assert created
    assert authorization.by_representative


def test_a_complete_signature_is_valid_with_its_evidence(tenant_a, contact, text):
    authorization, created = sign(tenant_a, contact, text)
    assert created
    assert authorization.status == "valid"
    assert authorization.expires_on == authorization.signed_on + datetime.timedelta(days=365)
    assert authorization.expires_at == day_end(tenant_a, authorization.expires_on)
    assert authorization.effective_from == authorization.signed_at
    assert authorization.channels == ["email"]
    assert (authorization.ip_address, authorization.user_agent) == ("192.0.2.10", "pytest")
    with tenant_context(tenant_a):
        assert list(AuthorizationEvent.objects.values_list("kind", flat=True)) == ["signed"]
        stored = Authorization.objects.get(pk=authorization.pk)
        assert bytes(stored.__dict__["signer_name"]) != b"Pat Example"  # encrypted at rest
    assert [e.action for e in audit_events(tenant=tenant_a, action="authorization.sign")] == [
        "authorization.sign"
    ]


def test_the_date_must_be_today(tenant_a, contact, text):
    with pytest.raises(Exception, match="today"):
        sign(tenant_a, contact, text, signed_on=timezone.localdate() - datetime.timedelta(days=10))


def test_double_submission_returns_the_first_authorization(tenant_a, contact, text):
    first, created = sign(tenant_a, contact, text, submission_key="nonce-1")
    again, created_again = sign(tenant_a, contact, text, submission_key="nonce-1")
    assert created
    assert not created_again
    assert again.pk == first.pk
    with tenant_context(tenant_a):
        assert Authorization.objects.count() == 1


def test_a_state_waiting_period_delays_effect(tenant_a, text, monkeypatch):
    rule = state_rules.StateRule(
        code="ZZ", name="Test", law="Test act", source="test", waiting_period_days=14
    )
    monkeypatch.setitem(state_rules.RULES, "ZZ", rule)
    contact = new_contact(tenant_a, state="ZZ")
    authorization, _ = sign(tenant_a, contact, text)
    assert authorization.effective_from - authorization.signed_at == datetime.timedelta(days=14)


def test_state_disclosures_are_part_of_the_published_text(tenant_a):
    services.consent_settings_update(
        tenant=tenant_a,
        actor=staff_actor(),
        operating_states=["wa", "TX"],
        state_mode="strictest",
        allow_unencrypted_waivers=False,
        reminder_days_before_expiry=30,
    )
    text = new_text(tenant_a)
    assert "Washington residents" in text.state_disclosures
    assert "Texas residents" in text.state_disclosures


def test_revocation_is_recorded_once(tenant_a, contact, text):
    authorization, _ = sign(tenant_a, contact, text)
    assert authorizations.authorization_revoke(
        tenant=tenant_a, authorization=authorization, evidence=evidence()
    )
    assert not authorizations.authorization_revoke(
        tenant=tenant_a, authorization=authorization, evidence=evidence()
    )
    assert authorization.status == "revoked"
    assert authorization.revoked_at is not None
    with tenant_context(tenant_a):
        kinds = list(
            AuthorizationEvent.objects.filter(authorization=authorization).values_list("kind", flat=True)
        )
    assert kinds == ["signed", "revoked"]


def test_expiry_flips_status_and_writes_the_expired_event(tenant_a, contact, text):
    authorization, _ = sign(tenant_a, contact, text)
    later = authorization.expires_at + datetime.timedelta(minutes=1)
    assert authorizations.authorization_expire_due(tenant=tenant_a, now=later) == 1
    assert authorizations.authorization_expire_due(tenant=tenant_a, now=later) == 0
    with tenant_context(tenant_a):
        authorization.refresh_from_db()
        event = AuthorizationEvent.objects.get(authorization=authorization, kind="expired")
    assert authorization.status == "expired"
    assert event.occurred_at == authorization.expires_at
    assert event.actor_type == "system"


SENDER_DOMAIN = "mail.clinic-a.test"


@pytest.fixture
def sender_domain(tenant_a):
    """Reminders leave from the tenant's verified sender domain (consent.patient_mail)."""
    return patient_sender(tenant_a, SENDER_DOMAIN)


def test_renewal_reminder_goes_once_without_phi_in_the_subject(
    tenant_a, sender_domain, contact, text, django_capture_on_commit_callbacks
):
    authorization, _ = sign(tenant_a, contact, text)
    too_early = authorization.expires_at - datetime.timedelta(days=45)
    assert authorizations.authorization_reminders_send(tenant=tenant_a, now=too_early) == 0
    due = authorization.expires_at - datetime.timedelta(days=29)
    with django_capture_on_commit_callbacks(execute=True):
        assert authorizations.authorization_reminders_send(tenant=tenant_a, now=due) == 1
        assert authorizations.authorization_reminders_send(tenant=tenant_a, now=due) == 0
    (message,) = patient_mail()  # from the tenant's verified domain, through the engine
    assert message.from_domain == SENDER_DOMAIN
    with tenant_context(tenant_a):
        address = Authorization.objects.select_related("contact").get(pk=authorization.pk).contact.email
    assert message.to == [address]
    assert message.subject == authorizations.REMINDER_SUBJECT
    for leak in (tenant_a.name, address, "Pat", "marketing"):
        assert leak not in message.subject
    assert "/p/authorize/" in message.body


def test_reminder_days_follow_the_tenant_setting(tenant_a, sender_domain, contact, text):
    services.consent_settings_update(
        tenant=tenant_a,
        actor=staff_actor(),
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=False,
        reminder_days_before_expiry=60,
    )
    authorization, _ = sign(tenant_a, contact, text)
    now = authorization.expires_at - datetime.timedelta(days=45)
    assert authorizations.authorization_reminders_send(tenant=tenant_a, now=now) == 1


def test_media_consent_is_its_own_kind(tenant_a, contact):
    media = new_text(tenant_a, kind=AuthorizationKind.MEDIA, **MEDIA_ELEMENTS)
    authorization, _ = sign(tenant_a, contact, media)
    assert authorization.kind == "media"


def test_the_upkeep_tasks_run_per_tenant_in_its_context(tenant_a, contact, text, monkeypatch):
    from consent import tasks

    authorization, _ = sign(tenant_a, contact, text)
    with tenant_context(tenant_a):
        Authorization.objects.filter(pk=authorization.pk).update(
            expires_at=timezone.now() - datetime.timedelta(minutes=5)
        )
    assert tasks.authorization_expire_tenant.apply(kwargs={"tenant_id": str(tenant_a.pk)}).get() == 1
    sent = []
    monkeypatch.setattr(tasks.authorization_expire_tenant, "apply_async", lambda kwargs: sent.append(kwargs))
    monkeypatch.setattr(tasks.authorization_remind_tenant, "apply_async", lambda kwargs: sent.append(kwargs))
    assert tasks.authorization_upkeep_all.apply().get() >= 1
    assert {"tenant_id": str(tenant_a.pk)} in sent


def test_reminders_wait_for_a_verified_sender_domain_then_leave_from_it(
    tenant_a, sender_domain, contact, text
):
    with tenant_context(tenant_a):
        SenderDomain.objects.filter(tenant=tenant_a).update(status=SenderDomain.Status.UNVERIFIED)
    authorization, _ = sign(tenant_a, contact, text)
    due = authorization.expires_at - datetime.timedelta(days=1)

    assert authorizations.authorization_reminders_send(tenant=tenant_a, now=due) == 0
    with tenant_context(tenant_a):
        assert Authorization.objects.get(pk=authorization.pk).reminder_sent_at is None  # still due
    assert patient_mail() == []
    with tenant_context(tenant_a):
        SenderDomain.objects.filter(tenant=tenant_a).update(status=SenderDomain.Status.VERIFIED)
    assert authorizations.authorization_reminders_send(tenant=tenant_a, now=due) == 1
    (reminder,) = patient_mail()
    assert reminder.from_domain == SENDER_DOMAIN
    with tenant_context(tenant_a):
        assert not SystemMail.objects.exists()  # never the platform's own outbox

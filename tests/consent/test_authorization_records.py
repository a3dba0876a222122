"""Recording forms signed elsewhere (paper, EHR), and the gate re-validating them as time passes."""

from __future__ import annotations

import datetime
import uuid
import zoneinfo

import pytest
from django.utils import timezone

from consent import authorization_records as records
from consent import authorizations, services
from consent.gate import may_send, may_send_batch
from consent.models import Authorization, AuthorizationAttachment, AuthorizationEvent, FormSource, Source
from healthmail.disclosure import Viewer
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events
from tests.delivery.patient_mail import patient_mail, patient_sender

from .conftest import COMPLETE_ELEMENTS, evidence, new_contact, new_text, staff_actor
from .scenarios import topic_for

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n% a scanned paper form\n"


def _at(tenant, day: datetime.date, hour: int = 12) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour), tzinfo=zoneinfo.ZoneInfo(tenant.timezone))


@pytest.fixture
def clock(monkeypatch):
    """Moves django.utils.timezone.now (what the gate and the services read)."""
    real = timezone.now

    def set_to(instant: datetime.datetime | None) -> None:
        monkeypatch.setattr(timezone, "now", (lambda: instant) if instant else real)

    return set_to


def record(tenant, contact, *, signed_on, text=None, expires_on=None, expiry_event="", **overrides):
    values = {
        "tenant": tenant,
        "contact": contact,
        "text": text or new_text(tenant),
        "signature": records.Signature(signer_name="Pat Example", signed_on=signed_on),
        "circumstances": records.Circumstances(
            form_source=FormSource.PAPER, expires_on=expires_on, expiry_event=expiry_event
        ),
        "evidence": evidence(source=Source.PAPER, actor=staff_actor()),
        "submission_key": uuid.uuid4().hex,
        "attachment": records.Attachment(PDF, "application/pdf"),
        **overrides,
    }
    authorization, created = records.authorization_record(**values)
    assert created
    return authorization


def _marketing_decisions(tenant, contact):
    topic = topic_for(tenant, "marketing")
    single = may_send(contact=contact, purpose="marketing", uses_phi=True, topic=topic)
    batch = may_send_batch(
        tenant=tenant, contact_ids=[contact.pk], purpose="marketing", uses_phi=True, topic=topic
    )[contact.pk]
    assert batch == single
    return single


@pytest.fixture
def opted_in(tenant_a):
    contact = new_contact(tenant_a)
    services.consent_grant(
        tenant=tenant_a, contact=contact, topic=topic_for(tenant_a, "marketing"), evidence=evidence()
    )
    return contact


def test_a_paper_form_signed_last_month_is_recorded_with_its_evidence(tenant_a, opted_in):
    today = records.tenant_today(tenant_a)
    signed_on = today - datetime.timedelta(days=30)
    ends = today + datetime.timedelta(days=60)
    authorization = record(tenant_a, opted_in, signed_on=signed_on, expires_on=ends)
    assert authorization.signed_on == signed_on
    assert authorization.signed_at == _at(tenant_a, signed_on, hour=0)
    assert authorization.form_source == "paper"
    assert authorization.recorded_by == "system:tests"
    with tenant_context(tenant_a):
        attachment = AuthorizationAttachment.objects.get(authorization=authorization)
        assert attachment.size == len(PDF)
        assert PDF not in bytes(attachment.__dict__["content"])  # encrypted at rest
        events = AuthorizationEvent.objects.filter(authorization=authorization)
        kinds = list(events.values_list("kind", flat=True))
    assert kinds == ["recorded"]
    [event] = audit_events(tenant=tenant_a, action="authorization.record")
    assert event.details["backdated"] is True
    assert event.details["attachment"] is True
    assert _marketing_decisions(tenant_a, opted_in).allowed


def test_marketing_is_allowed_exactly_while_the_calendar_date_lasts(tenant_a, opted_in, clock):
    today = records.tenant_today(tenant_a)
    last_day = today + datetime.timedelta(days=10)
    record(tenant_a, opted_in, signed_on=today - datetime.timedelta(days=30), expires_on=last_day)
    clock(_at(tenant_a, last_day, hour=23))
    assert _marketing_decisions(tenant_a, opted_in).allowed
    clock(_at(tenant_a, last_day + datetime.timedelta(days=1), hour=0))
    refused = _marketing_decisions(tenant_a, opted_in)
    assert (refused.allowed, refused.code, refused.on) == (False, "authorization_expired", last_day)
    assert str(last_day) not in refused.reason  # the date is PHI: only in `detail`
    assert f"{last_day:%Y-%m-%d}" in refused.detail


def test_an_expiration_in_may_2025_refuses_in_2027_without_any_task(tenant_a, opted_in, clock):
    clock(_at(tenant_a, datetime.date(2025, 2, 1)))
    record(
        tenant_a,
        opted_in,
        signed_on=datetime.date(2025, 1, 10),
        expires_on=datetime.date(2025, 5, 31),
        attachment=None,
    )  # recorded while valid (the tenant's BAA is younger: the gate itself is tried in 2027)
    clock(_at(tenant_a, datetime.date(2027, 3, 1)))
    refused = _marketing_decisions(tenant_a, opted_in)
    assert (refused.code, refused.on) == ("authorization_expired", datetime.date(2025, 5, 31))


def test_recording_the_end_event_ends_it_that_day(tenant_a, opted_in):
    today = records.tenant_today(tenant_a)
    authorization = record(
        tenant_a, opted_in, signed_on=today - datetime.timedelta(days=3), expiry_event="Leaving the plan"
    )
    assert authorization.expires_at is None
    assert _marketing_decisions(tenant_a, opted_in).allowed
    assert authorizations.authorization_end_event_record(
        tenant=tenant_a, authorization=authorization, occurred_on=today, evidence=evidence()
    )
    refused = _marketing_decisions(tenant_a, opted_in)
    assert (refused.code, refused.on) == ("authorization_expired", today)
    assert authorization.status == "expired"


def test_a_revocation_is_refused_with_its_date(tenant_a, opted_in):
    today = records.tenant_today(tenant_a)
    authorization = record(tenant_a, opted_in, signed_on=today - datetime.timedelta(days=3), expires_on=today)
    received = _at(tenant_a, today - datetime.timedelta(days=1))
    assert authorizations.authorization_revoke(
        tenant=tenant_a,
        authorization=authorization,
        evidence=evidence(source=Source.PAPER, occurred_at=received),
        received_via="mail",
    )
    refused = _marketing_decisions(tenant_a, opted_in)
    assert (refused.code, refused.on) == ("authorization_revoked", today - datetime.timedelta(days=1))
    assert authorization.revocation_received == "mail"


def test_a_form_known_to_be_false_is_defective(tenant_a, opted_in):
    today = records.tenant_today(tenant_a)
    authorization = record(tenant_a, opted_in, signed_on=today, expires_on=today + datetime.timedelta(days=9))
    assert authorizations.authorization_mark_false(
        tenant=tenant_a, authorization=authorization, evidence=evidence()
    )
    refused = _marketing_decisions(tenant_a, opted_in)
    assert (refused.code, refused.defects) == ("authorization_defective", ("known_false",))


def test_a_defective_form_is_refused_with_every_defect_and_nothing_is_stored(tenant_a, opted_in):
    today = records.tenant_today(tenant_a)
    with pytest.raises(records.AuthorizationDefective) as refused:
        record(
            tenant_a,
            opted_in,
            signed_on=today + datetime.timedelta(days=2),
            expires_on=today - datetime.timedelta(days=1),
            circumstances=records.Circumstances(
                combined_with=frozenset({"treatment_consent"}), expires_on=today - datetime.timedelta(days=1)
            ),
        )
    codes = [d["code"] for d in refused.value.extra["defects"]]
    assert codes == [
        "expiration_before_signature",
        "signature_date_in_future",
        "expired",
        "compound_authorization",
    ]
    assert all(d["paragraph"].startswith("45 CFR 164.508") for d in refused.value.extra["defects"])
    with tenant_context(tenant_a):
        assert not Authorization.objects.exists()
        assert not AuthorizationAttachment.objects.exists()


def test_a_full_text_form_is_kept_as_a_recorded_text_never_offered_for_signing(tenant_a, opted_in):
    published = new_text(tenant_a)
    text = records.authorization_text_from_elements(
        tenant=tenant_a, kind="marketing", title="Paper form 2026", elements=COMPLETE_ELEMENTS
    )
    today = records.tenant_today(tenant_a)
    authorization = record(
        tenant_a, opted_in, text=text, signed_on=today, expires_on=today + datetime.timedelta(days=5)
    )
    assert authorization.text.origin == "recorded"
    assert authorizations.authorization_text_current(tenant=tenant_a, kind="marketing") == published


def test_no_authorization_says_so(tenant_a, opted_in):
    refused = _marketing_decisions(tenant_a, opted_in)
    assert refused.code == "no_authorization"


def test_an_attachment_must_be_a_scan(tenant_a, opted_in):
    today = records.tenant_today(tenant_a)
    html = records.Attachment(b"x", "text/html")
    with pytest.raises(records.ApplicationError) as refused:
        record(tenant_a, opted_in, signed_on=today, expires_on=today, attachment=html)
    assert refused.value.code == "attachment_type_invalid"


def test_the_report_counts_expiry_bands_and_gate_answers_without_names(tenant_a):
    from consent import selectors

    today = records.tenant_today(tenant_a)
    text = new_text(tenant_a)
    for _ in range(11):
        record(
            tenant_a,
            new_contact(tenant_a),
            text=text,
            signed_on=today,
            expires_on=today + datetime.timedelta(days=45),
        )
    soon = record(
        tenant_a,
        new_contact(tenant_a),
        text=text,
        signed_on=today,
        expires_on=today + datetime.timedelta(days=5),
    )
    authorizations.authorization_revoke(tenant=tenant_a, authorization=soon, evidence=evidence())
    record(
        tenant_a,
        new_contact(tenant_a),
        text=text,
        signed_on=today,
        expires_on=today + datetime.timedelta(days=80),
    )
    with tenant_context(tenant_a):
        viewer = Viewer.trusted()  # a compliance officer's view: exact, small cells still hidden
        bands = {
            row["kind"]: row for row in selectors.authorization_expiry_bands(tenant=tenant_a, viewer=viewer)
        }
        counted = selectors.authorization_standing_counts(tenant=tenant_a, viewer=viewer)
    marketing = bands["Marketing (HIPAA authorization)"]
    assert (marketing["within_30"], marketing["within_60"], marketing["within_90"]) == (
        "0",
        "11",
        "fewer than 11",
    )
    answers = {row["code"]: row["count"] for row in counted}
    assert answers == {"authorization_valid": "12", "authorization_revoked": "fewer than 11"}


def test_a_renewal_reminder_for_a_paper_form_links_to_the_published_version(
    tenant_a, django_capture_on_commit_callbacks
):

    from consent.tokens import LinkKind, link_read

    published = new_text(tenant_a)
    paper = records.authorization_text_from_elements(
        tenant=tenant_a, kind="marketing", title="Paper form", elements=COMPLETE_ELEMENTS
    )
    today = records.tenant_today(tenant_a)
    authorization = record(
        tenant_a,
        new_contact(tenant_a),
        text=paper,
        signed_on=today,
        expires_on=today + datetime.timedelta(days=10),
    )
    patient_sender(tenant_a)  # reminders leave from the tenant's verified sender domain
    with django_capture_on_commit_callbacks(execute=True):
        assert authorizations.authorization_reminders_send(tenant=tenant_a) == 1
    token = patient_mail()[0].body.split("/p/authorize/")[1].split("/")[0]
    assert link_read(LinkKind.AUTHORIZE, token).text_id == published.pk
    assert authorization.text_id == paper.pk

"""Feedback classification (RELIABILITY E4): every report format through the one table - bounces
suppress only a gone recipient, soft bounces count, sender-side refusals and DMARC reports never
touch the patient, complaints end marketing, auto-replies and success notices do nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from audit.alerts import flagged_by_writer
from audit.models import AuditEvent
from consent.gate import may_send
from contacts.models import Contact
from delivery.inbound import dmarc
from delivery.inbound.classify import Category, classify_feedback, classify_status
from delivery.inbound.parse import parse_report
from delivery.inbound.services import inbound_process
from delivery.inbound.verp import VerpAddress, verp_address, verp_parse
from delivery.models import DomainPause, Message, SenderFeedback, Stream
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context

from .feedback_support import (
    EXPECTED,
    HARD,
    aggregate_mail,
    aggregate_xml,
    case,
    dmarc_address,
    observed,
)
from .outbox_helpers import make_message

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("status", "text", "action", "category", "cause"),
    [
        ("5.1.1", "", "failed", Category.HARD, ""),
        ("5.1.10", "", "failed", Category.HARD, ""),  # null MX / Microsoft RecipientNotFound
        ("5.1.2", "", "failed", Category.HARD, ""),
        ("5.2.1", "", "failed", Category.HARD, ""),
        ("5.2.2", "", "failed", Category.SOFT, ""),  # mailbox full: persistent transient
        ("4.2.2", "", "delayed", Category.SOFT, ""),
        ("5.4.7", "", "failed", Category.SOFT, ""),  # delivery time expired
        ("5.7.26", "", "failed", Category.SENDER, "dmarc"),
        ("5.7.23", "", "failed", Category.SENDER, "spf"),
        ("5.7.20", "", "failed", Category.SENDER, "dkim"),
        ("5.7.25", "", "failed", Category.SENDER, "reputation"),
        (
            "5.7.1",
            "554 5.7.1 Service unavailable; client host blocked using Spamhaus",
            "failed",
            Category.SENDER,
            "blocklist",
        ),
        (
            "",
            "550-5.7.26 Unauthenticated email from clinic.test is not accepted due to DMARC",
            "",
            Category.SENDER,
            "dmarc",
        ),
        (
            "",
            "421 4.7.0 Our system has detected unusual rate of unsolicited mail",
            "",
            Category.SENDER,
            "policy",
        ),
        ("", "550 Requested action not taken: mailbox unavailable", "", Category.HARD, ""),
        ("", "554 rejected: your IP is on a blocklist", "", Category.SENDER, "blocklist"),
        ("", "552 5.2.2 The email account that you tried to reach is over quota", "", Category.SOFT, ""),
        ("5.0.0", "mailbox full", "failed", Category.SOFT, ""),
        ("2.0.0", "", "delivered", Category.NONE, ""),
        ("", "", "relayed", Category.NONE, ""),
        ("5.7.17", "", "failed", Category.HARD, ""),  # mailbox owner changed (RFC 7293)
    ],
)
def test_classification_table(status, text, action, category, cause):
    verdict = classify_status(status, text, action=action)
    assert (verdict.category, verdict.cause) == (category, cause)


def test_feedback_types_per_rfc_5965_and_6591():
    assert classify_feedback("abuse") == Category.COMPLAINT
    assert classify_feedback("auth-failure") == Category.AUTH_REPORT
    assert classify_feedback("not-spam") == Category.NONE


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_format_follows_the_table(name, tenant_a):
    item = case(tenant_a, name, sender=f"{name.replace('_', '-')}.clinic-a.test")
    outcome = inbound_process(item.raw, envelope_recipients=[item.rcpt])
    assert observed(tenant_a, item) == EXPECTED[name]
    assert outcome.matched == (1 if EXPECTED[name].report or EXPECTED[name].health else 0)


def test_sender_side_refusal_never_blocks_the_patient(tenant_a):
    item = case(tenant_a, "dmarc_reject_dsn")
    inbound_process(item.raw, envelope_recipients=[item.rcpt])
    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=item.contact_id)
    assert may_send(contact=contact, purpose="treatment", uses_phi=True).allowed


def test_complaint_ends_marketing_but_not_treatment(tenant_a):
    item = case(tenant_a, "arf_abuse")
    inbound_process(item.raw, envelope_recipients=[item.rcpt])
    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=item.contact_id)
    assert may_send(contact=contact, purpose="treatment", uses_phi=True).allowed
    assert may_send(contact=contact, purpose="marketing", uses_phi=False).code == "suppressed_complaint"


def test_the_hard_status_of_another_recipient_is_not_ours(tenant_a):
    item = case(tenant_a, "multi_recipient")
    # The same report with our recipient's block removed: the other recipient's 5.1.1 alone.
    raw = item.raw.replace(item.message.to_address.encode(), b"third.person@patients.example")
    inbound_process(raw, envelope_recipients=[item.rcpt])
    assert observed(tenant_a, item).suppression is None


def _soft_bounce_again(tenant, first, *, delivered_between: bool = False) -> None:
    """Another message to the same patient comes back 5.2.2 too."""
    if delivered_between:
        delivered = make_message(tenant, address=first.message.to_address, contact_id=first.contact_id)
        with tenant_context(tenant):
            Message.objects.filter(pk=delivered.pk).update(state=Message.State.DELIVERED_TLS)
    again = make_message(tenant, address=first.message.to_address, contact_id=first.contact_id)
    verp = verp_address(prefix="bounce-t", tenant_id=tenant.pk, message_id=again.pk, domain="x.test")
    inbound_process(first.raw.replace(first.verp.encode(), verp.encode()), envelope_recipients=[verp])


@override_settings(DELIVERY_SOFT_BOUNCE_STREAK=2)
def test_soft_bounces_suppress_only_after_the_streak(tenant_a):
    first = case(tenant_a, "gmail_plain")
    inbound_process(first.raw, envelope_recipients=[first.rcpt])
    assert observed(tenant_a, first).suppression is None
    _soft_bounce_again(tenant_a, first)
    assert observed(tenant_a, first).suppression == HARD


@override_settings(DELIVERY_SOFT_BOUNCE_STREAK=2)
def test_a_delivery_between_soft_bounces_breaks_the_streak(tenant_a):
    first = case(tenant_a, "gmail_plain")
    inbound_process(first.raw, envelope_recipients=[first.rcpt])
    _soft_bounce_again(tenant_a, first, delivered_between=True)
    assert observed(tenant_a, first).suppression is None


@override_settings(DELIVERY_SENDER_REJECTION_THRESHOLD=2)
def test_sender_refusals_alert_then_pause_the_stream_to_that_domain(tenant_a):
    for _ in range(2):
        item = case(tenant_a, "dmarc_reject_dsn")
        inbound_process(item.raw, envelope_recipients=[item.rcpt])
    with tenant_context(tenant_a):
        pause = DomainPause.objects.get(tenant=tenant_a, stream=Stream.TRANSACTIONAL)
        events = list(AuditEvent.objects.filter(tenant=tenant_a, action__startswith="delivery."))
    assert pause.receiving_domain == "patients.example"
    fired = list(flagged_by_writer(tenant_a, events))
    assert {f.rule for f in fired} == {"delivery_sender_rejected", "delivery_stream_paused"}
    assert all("@" not in f.summary for f in fired)  # domains only, never an address


def test_tenant_less_legacy_verp_is_still_read(tenant_a):
    item = case(tenant_a, "postfix_dsn")
    legacy = f"bounce-t+{item.message.pk.hex}@mail.clinic-a.test"
    raw = item.raw.replace(item.verp.encode(), legacy.encode())
    assert verp_parse(legacy) == VerpAddress(item.message.pk, None)
    inbound_process(raw, envelope_recipients=[legacy])
    assert observed(tenant_a, item).suppression == HARD


@pytest.mark.parametrize("compression", ["gzip", "zip", "none"])
def test_dmarc_aggregate_reports_fill_the_health_page_once(compression, tenant_a):
    item = case(tenant_a, "success_dsn", sender="clinic-a.test")
    xml = aggregate_xml(domain="clinic-a.test", report_id=f"r-{compression}", passing=90, failing=10)
    raw = aggregate_mail(xml, compression=compression, to=dmarc_address(tenant_a))
    assert inbound_process(raw, envelope_recipients=[dmarc_address(tenant_a)]).matched == 1
    assert inbound_process(raw, envelope_recipients=[dmarc_address(tenant_a)]).matched == 0  # once
    with tenant_context(tenant_a):
        [entry] = SenderFeedback.objects.filter(tenant=tenant_a, kind=SenderFeedback.Kind.AGGREGATE)
    assert (entry.messages, entry.failed, entry.reporter) == (100, 10, "receiver.example")
    assert entry.sender_domain_id == item.message.sender_domain_id
    assert observed(tenant_a, item).suppression is None


def test_dmarc_aggregate_with_an_entity_bomb_is_refused(tenant_a):
    bomb = b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    bomb += b"<feedback><policy_published><domain>&b;</domain></policy_published></feedback>"
    raw = aggregate_mail(bomb, compression="gzip", to=dmarc_address(tenant_a))
    assert parse_report(raw).format != "dmarc_aggregate"
    assert dmarc.aggregate_parse(aggregate_xml(domain="d.test", report_id="1", passing=1, failing=0))


def test_a_report_for_another_tenants_message_changes_nothing_here(tenant_a, tenant_b):
    item = case(tenant_a, "postfix_dsn")
    other = case(tenant_b, "postfix_dsn")
    inbound_process(item.raw, envelope_recipients=[item.rcpt])
    assert observed(tenant_b, other).suppression is None
    assert observed(tenant_a, item).suppression == HARD


@override_settings(DELIVERY_SENDER_REJECTION_THRESHOLD=1, DELIVERY_REPORTS_DOMAIN="reports.healthmail.test")
def test_the_sender_domain_page_shows_its_health(member_client, tenant_a):
    item = case(tenant_a, "dmarc_reject_dsn", sender="clinic-a.test")
    inbound_process(item.raw, envelope_recipients=[item.rcpt])
    xml = aggregate_xml(domain="clinic-a.test", report_id="page-1", passing=3, failing=1)
    inbound_process(
        aggregate_mail(xml, compression="gzip", to="x@y"), envelope_recipients=[dmarc_address(tenant_a)]
    )
    client = member_client(Role.TENANT_ADMIN)
    page = client.get(reverse("delivery:sender_domain_detail", args=[item.message.sender_domain_id]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "4 messages reported, 75% passing DMARC, 1 failing" in body
    assert "patients.example" in body  # the refusing domain, and its pause
    assert "Paused because a receiving domain kept refusing" in body
    assert item.message.to_address not in body
    assert f"rua=mailto:{dmarc_address(tenant_a).replace('bounces', 'reports')}" in body


def test_a_plain_text_bounce_in_an_unknown_charset_is_still_read(tenant_a):
    item = case(tenant_a, "qmail")
    raw = item.raw.replace(
        b"Subject: failure notice\r\n",
        b"Subject: failure notice\r\nContent-Type: text/plain; charset=x-klingon\r\n",
    )
    inbound_process(raw, envelope_recipients=[item.rcpt])
    assert observed(tenant_a, item).suppression == HARD


def _paused(tenant):
    item = case(tenant, "dmarc_reject_dsn", sender=f"mail.{tenant.slug}.test")
    with override_settings(DELIVERY_SENDER_REJECTION_THRESHOLD=1):
        inbound_process(item.raw, envelope_recipients=[item.rcpt])
    with tenant_context(tenant):
        held = make_message(tenant, address="another@patients.example")
        Message.objects.filter(pk=held.pk).update(
            state=Message.State.DEFERRED, not_before=timezone.now() + timedelta(hours=1)
        )
        return item, DomainPause.objects.get(tenant=tenant), held


def test_a_tenant_admin_lifts_a_pause_and_held_mail_is_due_at_once(member_client, tenant_a):
    item, pause, held = _paused(tenant_a)
    client = member_client(Role.TENANT_ADMIN)
    url = reverse("delivery:domain_pause_lift", args=[item.message.sender_domain_id, pause.pk])
    response = client.post(url)
    assert response.status_code == 302
    with tenant_context(tenant_a):
        pause.refresh_from_db()
        held.refresh_from_db()
        lifted = AuditEvent.objects.filter(tenant=tenant_a, action="delivery.stream_pause_lifted").count()
    assert pause.paused_until <= timezone.now()
    assert held.not_before <= timezone.now()
    assert lifted == 1
    assert "already ended" in client.post(url, follow=True).content.decode()


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_only_tenant_admins_lift_pauses(member_client, tenant_a, role):
    item, pause, _ = _paused(tenant_a)
    url = reverse("delivery:domain_pause_lift", args=[item.message.sender_domain_id, pause.pk])
    assert member_client(role).post(url).status_code == 403
    with tenant_context(tenant_a):
        pause.refresh_from_db()
    assert pause.paused_until > timezone.now()


def test_another_tenants_pause_answers_404(member_client, tenant_a, tenant_b):
    own, _, _ = _paused(tenant_a)
    foreign, pause, _ = _paused(tenant_b)
    client = member_client(Role.TENANT_ADMIN)  # of tenant A
    for domain_id in (own.message.sender_domain_id, foreign.message.sender_domain_id):
        response = client.post(reverse("delivery:domain_pause_lift", args=[domain_id, pause.pk]))
        assert response.status_code == 404
    with tenant_context(tenant_b):
        pause.refresh_from_db()
    assert pause.paused_until > timezone.now()

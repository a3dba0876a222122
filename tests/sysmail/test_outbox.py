"""System mail survives a mail server outage (issue 13 item 5, issue 14 item 3).

A real aiosmtpd receiver on a fixed loopback port is DOWN while a person is invited, a legal hold is
placed or break-glass access is opened: the page or service answers normally and the mail is queued.
Then the receiver comes up, the retry delivers, and each recipient gets the mail exactly once.
"""

from __future__ import annotations

import datetime
import re
import time

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from audit import alerts, chain
from audit.break_glass import break_glass_open
from healthmail.accounts.models import Membership, User
from healthmail.accounts.roles import Role
from healthmail.sysmail import services, tasks
from healthmail.sysmail.models import SystemMail
from healthmail.tenants.context import tenant_context
from retention import holds
from tests.conftest import sign_in
from tests.factories import MembershipFactory
from tests.sysmail.outbox import Receiver, deliver_system_mail
from tests.testapp.models import SecretNote

pytestmark = pytest.mark.django_db


def _rows(tenant, **filters) -> list[SystemMail]:
    with tenant_context(tenant):
        return list(SystemMail.objects.filter(tenant=tenant, **filters).order_by("created_at"))


def _retry_after_outage(receiver: Receiver, tenant, expected: int) -> None:
    """The first attempts fail (server down); once it is up and the backoff has passed, each row is
    sent; further sweeps send nothing more."""
    assert deliver_system_mail(tenant) == ["retrying"] * expected
    receiver.up()
    assert deliver_system_mail(tenant) == []  # not due yet: the backoff holds
    time.sleep(1.1)
    assert deliver_system_mail(tenant) == ["sent"] * expected
    assert deliver_system_mail(tenant) == []
    assert {row.state for row in _rows(tenant)} == {SystemMail.State.SENT}


def test_invitation_while_mail_server_is_down_is_saved_then_delivered_once(
    client, tenant_a, smtp_receiver, django_capture_on_commit_callbacks
):
    admin = MembershipFactory(tenant=tenant_a, role=Role.TENANT_ADMIN)
    sign_in(client, admin.user, tenant=tenant_a)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/members/invite/",
            {"email": "outage.invitee@staff.example.org", "role": Role.MARKETER},
            follow=True,
        )
    assert response.status_code == 200
    assert "invitation email is queued" in response.content.decode()
    user = User.objects.get(username="outage.invitee@staff.example.org")
    with tenant_context(tenant_a):
        assert Membership.objects.filter(tenant=tenant_a, user=user).exists()
    [row] = _rows(tenant_a)
    assert (row.state, row.recipient_user_id, row.topic) == ("queued", user.pk, "accounts.invitation")

    _retry_after_outage(smtp_receiver, tenant_a, expected=1)
    assert smtp_receiver.recipients() == ["outage.invitee@staff.example.org"]
    assert b"/invite/" in smtp_receiver.handler.messages[0].content


def _custodian_notice_states(client, hold, custodians) -> list[str]:
    """The "Email notice" cell of each custodian's row on the hold's page."""
    html = client.get(f"/retention/holds/{hold.pk}/").content.decode()
    rows = re.findall(r"<tr><td>(.*?)</tr>", html, re.S)
    cells = [next(row for row in rows if row.startswith(user.email)) for user in custodians]
    return [re.search(r'<span class="badge[^"]*">(\w+)</span>', cell).group(1) for cell in cells]


def test_hold_placed_while_mail_server_is_down_notifies_custodians_once_it_returns(
    client, tenant_a, smtp_receiver, django_capture_on_commit_callbacks
):
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER)
    custodians = [MembershipFactory(tenant=tenant_a, role=Role.MARKETER).user for _ in range(2)]
    sign_in(client, officer.user, tenant=tenant_a)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/retention/holds/new/",
            {
                "matter": "Roe v. Clinic",
                "reason": "Pending litigation",
                "counsel": "Firm LLP",
                "categories": ["audit_events"],
                "custodians": [str(u.pk) for u in custodians],
                "review_every_days": 90,
            },
            follow=True,
        )
    assert response.status_code == 200
    assert "email notices are queued" in response.content.decode()
    with tenant_context(tenant_a):
        hold = holds.LegalHold.objects.get(tenant=tenant_a)
    assert {row.source_ids[0] for row in _rows(tenant_a)} == {str(hold.pk)}
    assert _custodian_notice_states(client, hold, custodians) == ["Queued", "Queued"]

    _retry_after_outage(smtp_receiver, tenant_a, expected=2)
    assert sorted(smtp_receiver.recipients()) == sorted(u.email for u in custodians)
    assert _custodian_notice_states(client, hold, custodians) == ["Sent", "Sent"]
    assert all(b"Roe" not in m.content for m in smtp_receiver.handler.messages)  # the matter stays in the app


def test_break_glass_alert_while_mail_server_is_down_reaches_every_officer_once(
    tenant_a, smtp_receiver, django_capture_on_commit_callbacks
):
    officers = [MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user for _ in range(2)]
    MembershipFactory(tenant=tenant_a, role=Role.MARKETER)  # not an alert recipient
    reviewer = MembershipFactory(tenant=tenant_a, role=Role.CLINICAL_REVIEWER).user
    with tenant_context(tenant_a):
        note = SecretNote.objects.create(tenant=tenant_a, body="Synthetic Patient Zed")
    with django_capture_on_commit_callbacks(execute=True):
        break_glass_open(
            user=reviewer,
            role=Role.CLINICAL_REVIEWER,
            tenant=tenant_a,
            target_type="testapp.secretnote",
            target_id=str(note.pk),
            reason="Patient unconscious in the emergency department",
        )
        chain.seal_all()
        fired = alerts.alerts_scan_tenant(tenant_a)
    assert [a.rule for a in fired] == ["break_glass"]

    _retry_after_outage(smtp_receiver, tenant_a, expected=2)
    assert sorted(smtp_receiver.recipients()) == sorted(u.email for u in officers)
    assert all(b"CRITICAL" in m.content for m in smtp_receiver.handler.messages)


def test_a_permanent_refusal_is_not_retried(tenant_a, smtp_receiver):
    smtp_receiver.handler.behaviour.reject = True
    smtp_receiver.up()
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    services.system_mail_queue(tenant=tenant_a, topic="test", subject="s", body="b", users=[officer])
    assert deliver_system_mail(tenant_a) == ["failed"]
    [row] = _rows(tenant_a)
    assert (row.attempts, row.last_error) == (1, "refused: SMTP 550")
    assert deliver_system_mail(tenant_a) == []


def test_a_temporary_refusal_is_retried_until_accepted(tenant_a, smtp_receiver):
    smtp_receiver.handler.behaviour.tempfail_first = 1  # 451 to the first DATA, then 250
    smtp_receiver.up()
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    services.system_mail_queue(tenant=tenant_a, topic="test", subject="s", body="b", users=[officer])
    assert deliver_system_mail(tenant_a) == ["retrying"]
    assert _rows(tenant_a)[0].last_error == "SMTP 451"
    time.sleep(1.1)
    assert deliver_system_mail(tenant_a) == ["sent"]
    assert smtp_receiver.recipients() == [officer.email]


def test_mail_that_cannot_be_sent_within_its_lifetime_fails_for_good(tenant_a, smtp_receiver, settings):
    settings.SYSTEM_MAIL_RETRY_FIRST_SECONDS = 600
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    services.system_mail_queue(
        tenant=tenant_a,
        topic="test",
        subject="s",
        body="b",
        users=[officer],
        lifetime=datetime.timedelta(minutes=5),
    )
    assert deliver_system_mail(tenant_a) == ["failed"]  # the next retry would fall after the lifetime
    [row] = _rows(tenant_a)
    assert row.last_error == "gave up after 1: mail server unreachable (ConnectionRefusedError)"
    assert (row.content, row.to_address) == (None, None)


def test_the_sweep_fails_rows_past_their_lifetime(tenant_a, smtp_receiver):
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    [row] = services.system_mail_queue(tenant=tenant_a, topic="test", subject="s", body="b", users=[officer])
    with tenant_context(tenant_a):
        SystemMail.objects.filter(pk=row.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    smtp_receiver.up()
    assert deliver_system_mail(tenant_a) == []
    [row] = _rows(tenant_a)
    assert (row.state, row.last_error) == ("failed", "lifetime over after 0 attempts")
    assert smtp_receiver.handler.messages == []


def test_a_claim_is_sent_once_and_an_abandoned_claim_is_taken_over(tenant_a, smtp_receiver):
    smtp_receiver.up()
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    [row] = services.system_mail_queue(tenant=tenant_a, topic="test", subject="s", body="b", users=[officer])
    with tenant_context(tenant_a):  # a worker claimed it and is still within its lease
        SystemMail.objects.filter(pk=row.pk).update(
            state="sending", claimed_until=timezone.now() + datetime.timedelta(minutes=5)
        )
    assert deliver_system_mail(tenant_a) == []
    assert services.system_mail_send(tenant_id=tenant_a.pk, mail_id=row.pk) is None  # a duplicate task
    with tenant_context(tenant_a):  # that worker died: its lease ran out
        SystemMail.objects.filter(pk=row.pk).update(
            claimed_until=timezone.now() - datetime.timedelta(seconds=1)
        )
    assert deliver_system_mail(tenant_a) == ["sent"]
    assert services.system_mail_send(tenant_id=tenant_a.pk, mail_id=row.pk) is None
    assert smtp_receiver.recipients() == [officer.email]


def _stored(tenant, row) -> tuple:
    """The columns as PostgreSQL holds them (what a dump or a stolen disk shows)."""
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT to_address, content FROM sysmail_systemmail WHERE id = %s", [row.pk])
        return cursor.fetchone()


def test_address_and_body_are_sealed_at_rest_and_wiped_once_sent(tenant_a, smtp_receiver):
    smtp_receiver.up()
    officer = MembershipFactory(
        tenant=tenant_a, role=Role.COMPLIANCE_OFFICER, user__email="zeb.canary@staff.example"
    ).user
    [row] = services.system_mail_queue(
        tenant=tenant_a,
        topic="test",
        subject="Your invitation",
        body="Your password link ends in 864209",
        users=[officer],
    )
    stored = b"".join(bytes(value) for value in _stored(tenant_a, row))
    assert b"zeb.canary" not in stored
    assert b"864209" not in stored
    assert deliver_system_mail(tenant_a) == ["sent"]
    assert b"864209" in smtp_receiver.handler.messages[0].content
    assert _stored(tenant_a, row) == (None, None)


def test_tasks_carry_ids_only(tenant_a, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(
        tasks.transactional_system_mail_send, "apply_async", lambda kwargs: sent.append(kwargs)
    )
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    with django_capture_on_commit_callbacks(execute=True):
        [row] = services.system_mail_queue(
            tenant=tenant_a, topic="test", subject="s", body="secret body", users=[officer]
        )
    assert sent == [{"tenant_id": str(tenant_a.pk), "mail_id": str(row.pk)}]


def test_nothing_is_queued_before_the_business_write_commits(tenant_a, django_capture_on_commit_callbacks):
    """The row belongs to the transaction: a rolled-back write leaves no mail behind."""
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user

    @transaction.atomic
    def failing_write() -> None:
        services.system_mail_queue(tenant=tenant_a, topic="test", subject="s", body="b", users=[officer])
        raise RuntimeError("the business write fails")

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        failing_write()
    assert callbacks == []
    assert _rows(tenant_a) == []


def test_retry_delay_grows_is_capped_and_jittered(settings):
    settings.SYSTEM_MAIL_RETRY_FIRST_SECONDS, settings.SYSTEM_MAIL_RETRY_MAX_SECONDS = 60, 3600
    for attempt, nominal in [(1, 60), (2, 120), (3, 240), (7, 3600), (20, 3600)]:
        delays = [services.retry_delay(attempt).total_seconds() for _ in range(50)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert len(set(delays)) > 40  # jitter: retries queued together spread out


def test_mail_of_one_tenant_is_invisible_to_another(tenant_a, tenant_b):
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    services.system_mail_queue(tenant=tenant_a, topic="test", subject="s", body="b", users=[officer])
    with tenant_context(tenant_b):
        assert SystemMail.objects.count() == 0
    assert services.system_mail_sweep_tenant(tenant_id=tenant_b.pk) == []
    assert mail.outbox == []


def test_a_line_break_in_a_subject_cannot_add_a_header_or_a_recipient(tenant_a, smtp_receiver):
    smtp_receiver.up()
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    services.system_mail_queue(
        tenant=tenant_a,
        topic="test",
        subject="Alerts for Clinic\r\nBcc: thief@elsewhere.example\n",
        body="b",
        users=[officer],
    )
    assert deliver_system_mail(tenant_a) == ["sent"]
    assert smtp_receiver.recipients() == [officer.email]
    content = smtp_receiver.handler.messages[0].content
    assert b"Subject: Alerts for Clinic Bcc: thief@elsewhere.example\r\n" in content
    assert b"\nBcc:" not in content
    officer.email = "a@b.example\r\nRCPT TO:<c@d>"  # never saved: an address with a break is a bug
    with pytest.raises(ValueError, match="line break"):
        services.system_mail_queue(tenant=tenant_a, topic="test", subject="s", body="b", users=[officer])

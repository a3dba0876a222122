"""A broken audit chain raises a critical alert, mailed to every compliance officer (issue 14 item 3).

Rows are tampered with as the schema owner with triggers off, as in test_chain.py; the mail goes
through the system-mail outbox to a real SMTP receiver.
"""

import uuid

import pytest
from django.core.management import CommandError, call_command

from audit import alerts, chain
from audit import services as audit
from audit.alerts import CHAIN_BROKEN
from audit.models import Alert, AuditEvent, ChainVerification
from audit.tasks import audit_verify_all
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.audit.test_chain import _owner_sql
from tests.factories import MembershipFactory, TenantFactory
from tests.sysmail.outbox import deliver_system_mail


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


@pytest.fixture
def tenant(committed_db):
    """A committed tenant with two compliance officers, a marketer and a sealed chain of 10 events."""
    tenant = TenantFactory(slug=f"chain-alert-{uuid.uuid4().hex[:8]}")
    tenant.officers = [MembershipFactory(tenant=tenant, role=Role.COMPLIANCE_OFFICER).user for _ in range(2)]
    MembershipFactory(tenant=tenant, role=Role.MARKETER)
    for index in range(10):
        audit.record(actor=Actor.system("test"), action="test.event", tenant=tenant, details={"n": index})
    while chain.seal_pending(tenant.pk):
        pass
    return tenant


def _chain_alerts(tenant) -> list[Alert]:
    with tenant_context(tenant):
        return list(Alert.objects.filter(tenant=tenant, rule=CHAIN_BROKEN))


def _seq_id(tenant, seq: int) -> int:
    with tenant_context(tenant):
        return AuditEvent.objects.get(tenant=tenant, seq=seq).pk


def _assert_every_officer_mailed_once(tenant, receiver) -> None:
    receiver.up()
    assert deliver_system_mail(tenant) == ["sent", "sent"]
    assert sorted(receiver.recipients()) == sorted(u.email for u in tenant.officers)
    for message in receiver.handler.messages:
        assert b"CRITICAL" in message.content
        assert b"Audit chain broken" in message.content


def test_hourly_verification_raises_one_critical_alert_for_a_tampered_row(tenant, smtp_receiver):
    assert audit_verify_all() >= 0
    assert _chain_alerts(tenant) == []  # an intact chain raises nothing

    _owner_sql("UPDATE audit_auditevent SET reason = 'edited' WHERE id = %s", [_seq_id(tenant, 4)])
    audit_verify_all()
    [alert] = _chain_alerts(tenant)
    assert alert.severity == Alert.Severity.CRITICAL
    assert "seq 4" in alert.summary
    _assert_every_officer_mailed_once(tenant, smtp_receiver)

    audit_verify_all()  # the same break found again: no second alert, no second mail
    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", tenant.slug)
    assert len(_chain_alerts(tenant)) == 1
    assert deliver_system_mail(tenant) == []
    with tenant_context(tenant):
        assert AuditEvent.objects.filter(tenant=tenant, action="audit.chain_broken").count() == 1


def test_the_sealer_alerts_when_the_newest_sealed_row_was_edited(tenant, smtp_receiver):
    _owner_sql("UPDATE audit_auditevent SET reason = 'edited' WHERE id = %s", [_seq_id(tenant, 10)])
    audit.record(actor=Actor.system("test"), action="test.event", tenant=tenant)
    assert chain.seal_pending(tenant.pk) == 1  # sealing goes on: writers never pile up
    [alert] = _chain_alerts(tenant)
    assert "seq 10" in alert.summary
    assert "sealer" in alert.summary
    _assert_every_officer_mailed_once(tenant, smtp_receiver)


def test_the_sealer_alerts_when_the_newest_sealed_row_was_deleted(tenant):
    _owner_sql("DELETE FROM audit_auditevent WHERE id = %s", [_seq_id(tenant, 10)])
    audit.record(actor=Actor.system("test"), action="test.event", tenant=tenant)
    chain.seal_pending(tenant.pk)
    [alert] = _chain_alerts(tenant)
    assert "seq 10" in alert.summary
    assert "missing" in alert.summary


def test_the_sealer_raises_nothing_on_an_intact_chain(tenant):
    audit.record(actor=Actor.system("test"), action="test.event", tenant=tenant)
    assert chain.seal_pending(tenant.pk) == 1
    assert _chain_alerts(tenant) == []


def test_a_tenant_without_compliance_officers_alerts_its_admins(committed_db, smtp_receiver):
    tenant = TenantFactory(slug=f"no-officer-{uuid.uuid4().hex[:8]}")
    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user
    MembershipFactory(tenant=tenant, role=Role.MARKETER)
    alerts.alert_chain_broken(tenant_id=tenant.pk, problem="seq 2: planted", found_by="test")
    smtp_receiver.up()
    assert deliver_system_mail(tenant) == ["sent"]
    assert smtp_receiver.recipients() == [admin.email]


def _verifications(tenant) -> list[tuple[bool, str]]:
    with tenant_context(tenant):
        return list(ChainVerification.objects.filter(tenant=tenant).values_list("ok", "problem"))


def test_every_way_of_verifying_records_the_result_for_the_banner(tenant, capsys):
    """The hourly task and the operator's command record through the one verification record (the
    officer's page does too: tests/audit/test_pages.py), so the banner shows what was last found."""
    audit_verify_all()
    call_command("audit_verify", "--tenant", tenant.slug)
    assert _verifications(tenant) == [(True, ""), (True, "")]

    _owner_sql("UPDATE audit_auditevent SET reason = 'edited' WHERE id = %s", [_seq_id(tenant, 4)])
    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", tenant.slug)
    newest_ok, problem = _verifications(tenant)[0]  # newest first
    assert newest_ok is False
    assert problem.startswith("seq 4")

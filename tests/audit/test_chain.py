"""Tamper-evident audit trail (RELIABILITY A1): append-only for the app, every tamper detected."""

import threading
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.db.utils import DatabaseError

from audit import chain
from audit import services as audit
from audit.models import AuditEvent
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.factories import TenantFactory


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


@pytest.fixture
def sealed_tenant(committed_db):
    tenant = TenantFactory(slug=f"audit-{uuid.uuid4().hex[:8]}")
    for index in range(10):
        audit.record(actor=Actor.system("test"), action="test.event", tenant=tenant, details={"n": index})
    while chain.seal_pending(tenant.pk):
        pass
    chain.checkpoint_export()
    return tenant


def _owner_sql(statement: str, params=()) -> None:
    """Tamper as the schema owner (a superuser here) with triggers switched off."""
    owner = connections["owner"]
    with owner.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(statement, params)
        cursor.execute("SET session_replication_role = origin")
    owner.close()


def _events(tenant) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(tenant=tenant).order_by("seq"))


def _problem(tenant) -> str:
    report = chain.verify_chain(tenant.pk)
    assert not report.ok
    return report.problems[0]


def test_sealed_chain_verifies(sealed_tenant):
    report = chain.verify_chain(sealed_tenant.pk)
    assert report.ok, report.problems
    assert (report.rows, report.unsealed) == (10, 0)
    assert [e.seq for e in _events(sealed_tenant)] == list(range(1, 11))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET reason = 'edited' WHERE tenant_id = %s",
        "UPDATE audit_auditevent SET seq = seq + 100 WHERE tenant_id = %s",
        "DELETE FROM audit_auditevent WHERE tenant_id = %s",
    ],
)
def test_application_role_cannot_change_or_delete_events(sealed_tenant, statement):
    with tenant_context(sealed_tenant), connection.cursor() as cursor:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute(statement, [sealed_tenant.pk])


def test_application_role_cannot_truncate(sealed_tenant):
    with connection.cursor() as cursor, pytest.raises(DatabaseError), transaction.atomic():
        cursor.execute("TRUNCATE audit_auditevent")


def test_single_byte_edit_is_found_and_named(sealed_tenant):
    target = _events(sealed_tenant)[4]
    _owner_sql("UPDATE audit_auditevent SET action = 'test.evenT' WHERE id = %s", [target.pk])
    assert _problem(sealed_tenant).startswith(f"seq 5 (row id {target.pk})")


def test_timestamp_change_is_found(sealed_tenant):
    target = _events(sealed_tenant)[2]
    _owner_sql(
        "UPDATE audit_auditevent SET occurred_at = occurred_at + interval '1 microsecond' WHERE id = %s",
        [target.pk],
    )
    assert _problem(sealed_tenant).startswith("seq 3 ")


def test_deleted_middle_row_is_found(sealed_tenant):
    target = _events(sealed_tenant)[6]
    _owner_sql("DELETE FROM audit_auditevent WHERE id = %s", [target.pk])
    assert _problem(sealed_tenant).startswith("seq 7: row missing")


def test_reordered_rows_are_found(sealed_tenant):
    events = _events(sealed_tenant)
    first, second = events[3], events[4]
    _owner_sql("UPDATE audit_auditevent SET seq = -1 WHERE id = %s", [first.pk])
    _owner_sql("UPDATE audit_auditevent SET seq = 4 WHERE id = %s", [second.pk])
    _owner_sql("UPDATE audit_auditevent SET seq = 5 WHERE id = %s", [first.pk])
    assert _problem(sealed_tenant).startswith(f"seq 4 (row id {second.pk})")


def test_deleted_newest_rows_are_found_by_the_signed_checkpoint(sealed_tenant):
    for event in _events(sealed_tenant)[-3:]:
        _owner_sql("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert _problem(sealed_tenant).startswith("seq 8..10: rows missing at the end")


def test_chain_wiped_by_the_owner_is_found(sealed_tenant):
    _owner_sql("DELETE FROM audit_auditevent WHERE tenant_id = %s", [sealed_tenant.pk])
    assert _problem(sealed_tenant).startswith("seq 1..10: rows missing")


def test_row_moved_to_another_tenant_is_found(sealed_tenant):
    other = TenantFactory(slug=f"audit-{uuid.uuid4().hex[:8]}")
    target = _events(sealed_tenant)[0]
    _owner_sql("UPDATE audit_auditevent SET tenant_id = %s WHERE id = %s", [other.pk, target.pk])
    assert _problem(sealed_tenant).startswith("seq 1: row missing")
    assert chain.verify_chain(other.pk).problems[0].startswith(f"seq 1 (row id {target.pk})")


def test_forged_row_is_found(sealed_tenant):
    _owner_sql(
        "INSERT INTO audit_auditevent (tenant_id, occurred_at, actor_type, actor_id, action, target_type,"
        " target_id, outcome, reason, details, request_id, seq, hash, sealed_at)"
        " VALUES (%s, now(), 'system', '', 'forged', '', '', 'success', '', '{}', '', 11, %s, now())",
        [sealed_tenant.pk, "f" * 64],
    )
    assert _problem(sealed_tenant).startswith("seq 11 (row id")


def test_forged_checkpoint_line_is_not_trusted_and_is_reported(sealed_tenant):
    path = chain.checkpoint_path(sealed_tenant.pk)
    path.write_text(
        path.read_text() + '{"chain": "x", "seq": 99, "hash": "00", "at": "now", "key_id": "test",'
        ' "signature": "00"}\n'
    )
    assert chain.latest_checkpoint(sealed_tenant.pk)["seq"] == 10
    assert "signature does not verify" in _problem(sealed_tenant)


def test_audit_verify_command_names_the_row_and_fails(sealed_tenant, capsys):
    call_command("audit_verify", "--tenant", sealed_tenant.slug)
    assert "ok (10 rows)" in capsys.readouterr().out
    target = _events(sealed_tenant)[1]
    _owner_sql("UPDATE audit_auditevent SET details = '{\"n\": 42}' WHERE id = %s", [target.pk])
    with pytest.raises(CommandError, match="failed verification"):
        call_command("audit_verify", "--tenant", sealed_tenant.slug)
    assert f"first problem at seq 2 (row id {target.pk})" in capsys.readouterr().out


def test_concurrent_writers_and_sealers_never_fork_the_chain(committed_db):
    tenant = TenantFactory(slug=f"audit-{uuid.uuid4().hex[:8]}")
    errors = []

    def write(count):
        try:
            for index in range(count):
                audit.record(
                    actor=Actor.system("writer"),
                    action="test.concurrent",
                    tenant=tenant,
                    details={"i": index},
                )
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    def seal():
        try:
            for _ in range(40):
                chain.seal_pending(tenant.pk, batch=25)
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(100,)) for _ in range(4)]
    threads += [threading.Thread(target=seal) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while chain.seal_pending(tenant.pk):
        pass
    assert not errors
    report = chain.verify_chain(tenant.pk)
    assert report.ok, report.problems
    assert (report.rows, report.unsealed) == (400, 0)

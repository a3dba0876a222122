"""PostgreSQL, not only the ORM, keeps tenants apart (RELIABILITY S2)."""

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from healthmail.accounts.models import Membership
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement, TenantOwnedModel
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _tenant_tables() -> list[str]:
    """Every table with a tenant_id column, whatever model it belongs to (the catalog decides)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name"
        )
        tables = [row[0] for row in cursor.fetchall()]
    models = {m._meta.db_table for m in apps.get_models() if issubclass(m, TenantOwnedModel)}
    assert models <= set(tables)
    return tables


def test_every_tenant_table_forces_row_level_security():
    with connection.cursor() as cursor:
        for table in _tenant_tables():
            cursor.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = %s", [table]
            )
            assert cursor.fetchone() == (True, True), table
            cursor.execute("SELECT count(*) FROM pg_policies WHERE tablename = %s", [table])
            assert cursor.fetchone()[0] >= 1, table


def test_application_role_cannot_bypass_row_level_security():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        user, superuser, bypass = cursor.fetchone()
        assert user == settings.DATABASE_APP_USER
        assert (superuser, bypass) == (False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        )
        assert cursor.fetchone()[0] == 0


def test_raw_query_outside_tenant_context_sees_no_rows(tenant_a):
    MembershipFactory(tenant=tenant_a)
    with tenant_context(tenant_a):
        assert Membership.objects.count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_membership")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM tenants_businessassociateagreement")
        assert cursor.fetchone()[0] == 0


def test_tenant_context_cannot_read_another_tenants_rows(tenant_a, tenant_b):
    MembershipFactory(tenant=tenant_a)
    MembershipFactory(tenant=tenant_b)
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tenant_id FROM accounts_membership")
        assert cursor.fetchall() == [(tenant_a.pk,)]
        cursor.execute(
            "SELECT count(*) FROM tenants_businessassociateagreement WHERE tenant_id = %s", [tenant_b.pk]
        )
        assert cursor.fetchone()[0] == 0


def test_tenant_context_cannot_write_into_another_tenant(tenant_a, tenant_b):
    membership_b = MembershipFactory(tenant=tenant_b)
    with tenant_context(tenant_a):
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE accounts_membership SET role = 'tenant_admin' WHERE id = %s", [membership_b.pk]
            )
            assert cursor.rowcount == 0
            cursor.execute("DELETE FROM accounts_membership WHERE id = %s", [membership_b.pk])
            assert cursor.rowcount == 0
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            BusinessAssociateAgreement.objects.create(
                tenant=tenant_b,
                counterparty="x",
                signed_on="2026-01-01",
                effective_on="2026-01-01",
                signatory_name="x",
                document_sha256="b" * 64,
                services=["forms"],
            )
    with tenant_context(tenant_b):
        assert Membership.objects.get(pk=membership_b.pk).role == membership_b.role


def test_tenant_setting_ends_with_the_block(tenant_a):
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        assert cursor.fetchone()[0] == str(tenant_a.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        assert cursor.fetchone()[0] in ("", None)


def _tenant_setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        return cursor.fetchone()[0] or ""


def test_nested_contexts_set_and_restore_the_tenant(tenant_a, tenant_b):
    with transaction.atomic(), tenant_context(tenant_a):
        with tenant_context(tenant_b):
            assert _tenant_setting() == str(tenant_b.pk)
            with tenant_context(tenant_a):
                assert _tenant_setting() == str(tenant_a.pk)
            assert _tenant_setting() == str(tenant_b.pk)
        # The value read back when tenant_b was set is the one restored (one query reads and sets).
        assert _tenant_setting() == str(tenant_a.pk)
        with tenant_context(tenant_a):
            assert _tenant_setting() == str(tenant_a.pk)
        assert _tenant_setting() == str(tenant_a.pk)


def test_reentering_the_same_tenant_sends_no_setting_query(tenant_a):
    from django.test.utils import CaptureQueriesContext

    with tenant_context(tenant_a), CaptureQueriesContext(connection) as queries:
        with tenant_context(tenant_a):
            pass
    assert not [q for q in queries.captured_queries if "set_config" in q["sql"]], queries.captured_queries


def test_an_error_inside_a_reentered_context_leaves_the_outer_one_usable(tenant_a):
    with tenant_context(tenant_a):
        with pytest.raises(ProgrammingError), tenant_context(tenant_a), connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
        assert _tenant_setting() == str(tenant_a.pk)


def test_a_context_copied_into_another_thread_sets_the_tenant_there(tenant_a):
    """A thread has its own connection: the open context of the thread it was copied from does not
    hold the setting there."""
    import contextvars
    import threading

    seen: list[str] = []

    def in_thread() -> None:
        try:
            with transaction.atomic(), tenant_context(tenant_a):
                seen.append(_tenant_setting())
        finally:
            connection.close()

    with tenant_context(tenant_a):
        copied = contextvars.copy_context()
        thread = threading.Thread(target=copied.run, args=(in_thread,))
        thread.start()
        thread.join()
    assert seen == [str(tenant_a.pk)]

"""What each advanced contact costs the database in writes: every index entry and every foreign-key
check of the step log and position tables is paid once per contact per advance (a million contacts
due at once: bench/journeys.py). These tables carry no index on the tenant alone, the step log's
message index holds only the rows of sent email, the step log has no index on the contact (read
through the positions) and no foreign-key constraint (no check per inserted row). The reads they
serve stay indexed (EXPLAIN below)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


def _index_columns(definition: str) -> str:
    return definition.split(" USING btree ", 1)[1].split(")")[0] + ")"


@pytest.mark.parametrize("table", ["journeys_steplog", "journeys_position"])
def test_no_index_on_the_tenant_alone(table):
    columns = {name: _index_columns(d) for name, d in _indexes(table).items() if " USING btree " in d}
    assert columns, table
    assert "(tenant_id)" not in columns.values(), columns


def test_the_step_log_message_index_holds_only_rows_that_name_a_message():
    definitions = [d for d in _indexes("journeys_steplog").values() if "(message_id)" in d]
    assert definitions == [
        "CREATE INDEX journey_steplog_message ON public.journeys_steplog USING btree (message_id) "
        "WHERE (message_id IS NOT NULL)"
    ]


def test_the_step_log_has_no_index_on_the_contact():
    """A random-key entry per log row (two per contact per advance) that nothing needs: the history
    and the cascade go through the positions."""
    columns = [_index_columns(d) for d in _indexes("journeys_steplog").values() if " USING btree " in d]
    assert columns
    assert not [c for c in columns if "contact_id" in c], columns


def test_the_step_log_has_no_foreign_key_constraint():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass",
            ["journeys_steplog"],
        )
        assert cursor.fetchall() == []


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        # Archiving messages sets the log rows naming them to NULL (Django's SET_NULL, by message id).
        ("SELECT id FROM journeys_steplog WHERE message_id = ANY(%s)", "journey_steplog_message"),
        # The contact page's history and the contact's deletion (cascade) find the contact's positions
        # here, and their log rows by position (below).
        ("SELECT id FROM journeys_position WHERE contact_id = ANY(%s)", "journeys_position_contact_id"),
    ],
)
def test_the_reads_the_dropped_indexes_might_have_served_stay_indexed(sql, index):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, [[uuid.uuid4()]])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan, plan


@pytest.mark.parametrize(
    "sql",
    [
        # The contact page's history (journeys.selectors.contact_history).
        "SELECT id FROM pg_temp.journeys_steplog WHERE tenant_id = %(tenant)s AND position_id = ANY(%(ids)s)"
        " ORDER BY at, id",
        # Django's collector when a position goes (a deleted contact's positions): the policy adds the
        # tenant.
        "DELETE FROM pg_temp.journeys_steplog WHERE position_id = ANY(%(ids)s)",
    ],
)
def test_a_positions_log_rows_are_read_by_the_position_index(tenant_a, sql):
    """With planner statistics of a log where one step's rows are most of the tenant's (a backlog
    advanced), the reads by position use (tenant, position, at), not the counts index that also
    leads with the tenant. A copy of the table with its indexes and the tenant policy, analyzed."""
    from healthmail.tenants.context import tenant_context

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE journeys_steplog (LIKE public.journeys_steplog INCLUDING ALL)")
        cursor.execute("ALTER TABLE pg_temp.journeys_steplog ENABLE ROW LEVEL SECURITY")
        cursor.execute("ALTER TABLE pg_temp.journeys_steplog FORCE ROW LEVEL SECURITY")
        cursor.execute(
            "CREATE POLICY tenant_isolation ON pg_temp.journeys_steplog"
            " USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())"
        )
    try:
        with tenant_context(tenant_a), connection.cursor() as cursor:
            journey, version = uuid.uuid4(), uuid.uuid4()
            cursor.execute(
                "INSERT INTO pg_temp.journeys_steplog (id, tenant_id, journey_id, version_id, position_id,"
                " contact_id, step, outcome, detail, at)"
                " SELECT gen_random_uuid(), %s, %s, %s, p, gen_random_uuid(), s, o, '', now()"
                " FROM generate_series(1, 2500), gen_random_uuid() AS p,"
                " (VALUES ('tag', 'updated'), ('done', 'exited')) AS k(s, o)",
                [tenant_a.pk, journey, version],
            )
            cursor.execute("ANALYZE pg_temp.journeys_steplog")
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'journeys_steplog'"
                " AND schemaname = pg_my_temp_schema()::regnamespace::text AND indexdef LIKE %s",
                ["%(tenant_id, position_id, at)%"],
            )
            (index,) = [row[0] for row in cursor.fetchall()]
            cursor.execute("EXPLAIN " + sql, {"tenant": tenant_a.pk, "ids": [uuid.uuid4(), uuid.uuid4()]})
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert f" {index} " in plan, plan
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE pg_temp.journeys_steplog")

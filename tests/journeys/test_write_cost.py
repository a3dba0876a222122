"""What each advanced contact costs the database in writes: every index entry and every foreign-key
check of the step log and position tables is paid once per contact per advance (a million contacts
due at once: bench/journeys.py). These tables carry no index on the tenant alone, the step log's
message index holds only the rows of sent email, and the step log has no foreign-key constraint
(no check per inserted row). The reads they serve stay indexed (EXPLAIN below)."""

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
        # The contact page's history and the contact's deletion (cascade).
        ("SELECT id FROM journeys_steplog WHERE contact_id = ANY(%s)", "journeys_steplog_contact_id"),
        ("SELECT id FROM journeys_position WHERE contact_id = ANY(%s)", "journeys_position_contact_id"),
    ],
)
def test_the_reads_the_dropped_indexes_might_have_served_stay_indexed(sql, index):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, [[uuid.uuid4()]])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan, plan

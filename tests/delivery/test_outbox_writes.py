"""What a message costs PostgreSQL: the hand-off mark (record._HANDOFF) is a HOT update, a new row version
on the same page without an entry in any index, because no index of the outbox holds a column it writes
and the table leaves room on its pages for the versions a message goes through (migration 0015)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from delivery.engine import record
from delivery.engine.claim import message_claim_batch
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory

from .engine_support import enqueue, verified_sender_domain


def _handoff_columns() -> list[str]:
    assignments = re.search(r"SET (.*?)\n", record._HANDOFF).group(1)
    return re.findall(r"(\w+) = %\(", assignments)


@pytest.mark.django_db
def test_no_index_of_the_outbox_holds_a_column_the_hand_off_mark_writes():
    columns = _handoff_columns()
    assert columns == ["handoff_at", "lease_until"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'delivery_message'::regclass"
        )
        definitions = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'delivery_message'::regclass")
        options = cursor.fetchone()[0] or []
    assert len(definitions) >= 5
    assert [d for d in definitions if any(re.search(rf"\b{c}\b", d) for c in columns)] == []
    assert "fillfactor=50" in options


@pytest.fixture
def committed_tenant(committed_db):
    slug = f"writes-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Writes {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def test_the_hand_off_mark_is_a_hot_update(committed_tenant):
    """Committed rows, as a worker sees them, on pages of their own: the test's rows are copied into a
    temporary table of the outbox's definition (its columns, defaults and every index), which shadows
    delivery_message for this session, so the claim and the hand-off run unchanged against it. Its
    pages hold nobody else's rows, and old row versions of a temporary table are pruned by its own
    session alone (no other session's snapshot holds them): every hand-off mark must be HOT."""
    sender, _ = verified_sender_domain(committed_tenant)
    messages = enqueue(committed_tenant, [f"p{i}@good.test" for i in range(5)], sender_domain=sender)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'public.delivery_message'::regclass")
        options = ", ".join(cursor.fetchone()[0] or [])
        cursor.execute(
            "CREATE TEMPORARY TABLE delivery_message (LIKE public.delivery_message INCLUDING ALL)"
            + (f" WITH ({options})" if options else "")
        )
    try:
        with tenant_context(committed_tenant), connection.cursor() as cursor:  # RLS: the tenant's rows
            cursor.execute(
                "INSERT INTO pg_temp.delivery_message SELECT * FROM public.delivery_message"
                " WHERE id = ANY(%s::uuid[])",
                ["{" + ",".join(str(m.pk) for m in messages) + "}"],
            )
        ids = message_claim_batch(
            tenant_id=committed_tenant.pk,
            stream="transactional",
            worker="w1",
            limit=10,
            lease=timedelta(seconds=60),
        )
        assert set(ids) == {m.pk for m in messages}

        def hot_updates() -> int:
            with connection.cursor() as cursor:  # this transaction's own counts, not yet flushed
                cursor.execute(
                    "SELECT pg_stat_get_xact_tuples_hot_updated('pg_temp.delivery_message'::regclass)"
                )
                return int(cursor.fetchone()[0])

        with transaction.atomic():
            before = hot_updates()
            owned = record.mark_handoff(
                tenant_id=committed_tenant.pk,
                worker="w1",
                ids=ids,
                lease_until=timezone.now() + timedelta(seconds=60),
            )
            hot = hot_updates() - before
        assert owned == set(ids)
        assert hot == len(ids), f"{hot} of {len(ids)} hand-off marks were HOT updates"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE pg_temp.delivery_message")


def test_a_claim_reads_each_claimed_row_once_whatever_the_statistics_say(committed_tenant):
    """The claim's UPDATE finds the rows it locked by their address (ctid), so its cost follows the
    rows it claims, not the tenant's backlog. Joined by id, with statistics taken before the backlog
    arrived (a launch after the last ANALYZE: here a temporary table analyzed while empty), the
    planner scanned the tenant's rows once per claimed row, until it met that row: 20 claimed rows at
    the end of a 2,000-row table read its pages about 20 times over."""
    sender, _ = verified_sender_domain(committed_tenant)
    (message,) = enqueue(committed_tenant, ["p0@good.test"], sender_domain=sender)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'public.delivery_message'::regclass")
        options = ", ".join(cursor.fetchone()[0] or [])
        cursor.execute(
            "CREATE TEMPORARY TABLE delivery_message (LIKE public.delivery_message INCLUDING ALL)"
            + (f" WITH ({options})" if options else "")
        )
    try:
        with connection.cursor() as cursor:
            # The outbox's own tenant policy (healthmail/tenants/rls.py): its condition is what the
            # planner may misjudge.
            cursor.execute("ALTER TABLE pg_temp.delivery_message ENABLE ROW LEVEL SECURITY")
            cursor.execute("ALTER TABLE pg_temp.delivery_message FORCE ROW LEVEL SECURITY")
            cursor.execute(
                "CREATE POLICY tenant_isolation ON pg_temp.delivery_message"
                " USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())"
            )
            cursor.execute("ANALYZE pg_temp.delivery_message")  # empty: the statistics before a launch
        with tenant_context(committed_tenant), connection.cursor() as cursor:
            # 2,000 copies of the tenant's message (own ids and Message-IDs): the first 1,980 sent
            # already, the 20 still due at the end of the table, where a launch's last rows are.
            cursor.execute(
                "INSERT INTO pg_temp.delivery_message SELECT (jsonb_populate_record(m, jsonb_build_object("
                " 'id', gen_random_uuid(), 'message_id', m.message_id || '.' || n,"
                " 'state', CASE WHEN n <= 1980 THEN 'delivered_tls' ELSE 'queued' END))).*"
                " FROM public.delivery_message AS m, generate_series(1, 2000) AS n WHERE m.id = %s",
                [message.pk],
            )
            cursor.execute(
                "SELECT pg_relation_size('pg_temp.delivery_message') / current_setting('block_size')::int"
            )
            pages = cursor.fetchone()[0]

        def blocks_read() -> int:
            with connection.cursor() as cursor:  # this transaction's own counts, not yet flushed
                cursor.execute("SELECT pg_stat_get_xact_blocks_fetched('pg_temp.delivery_message'::regclass)")
                return int(cursor.fetchone()[0])

        with transaction.atomic():
            before = blocks_read()
            ids = message_claim_batch(
                tenant_id=committed_tenant.pk,
                stream="transactional",
                worker="w1",
                limit=20,
                lease=timedelta(seconds=60),
            )
            read = blocks_read() - before
        assert len(ids) == 20
        assert pages > 100
        # Each claimed row: its page, its lock, its new version: a few blocks a row, not one pass over
        # the tenant's pages per row (20 times ~400 blocks).
        assert read < pages, f"a claim of {len(ids)} rows read {read} blocks of a {pages}-page table"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE pg_temp.delivery_message")


@pytest.mark.django_db
def test_rows_without_a_content_key_write_no_entry_for_it_and_a_key_still_finds_its_rows():
    """Campaign rows have no content key (rendered at send time): the key's index leaves them out, so
    their insert, claim and outcome write no entry to it (migration 0018); a key's deletion or a shred
    (`content_key_id = k`) still finds its rows through it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'delivery_message'::regclass"
        )
        on_key = [row[0] for row in cursor.fetchall() if re.search(r"\bcontent_key_id\b", row[0])]
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN SELECT id FROM delivery_message WHERE content_key_id = %s", [uuid.uuid4()])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert len(on_key) == 1
    assert on_key[0].endswith("WHERE (content_key_id IS NOT NULL)")
    assert "message_content_key" in plan

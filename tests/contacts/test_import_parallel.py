"""A job cut into slices that workers import at the same time: every row once, one contact per
person, counts summed, the job finished once by the last slice.

The races use committed data and one database connection per thread (two workers), so they take
`committed_db` and their own uniquely named tenant instead of the per-test transaction.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import OperationalError, connections

from audit.models import AuditEvent
from contacts.imports import services, tasks
from contacts.models import Contact, ImportJob, ImportSlice
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import contacts, row_errors, run, start, upload

WAIT = 30  # seconds: a generous bound for a step that takes milliseconds


def _slices(job) -> list[tuple[int, int, int, str]]:
    with tenant_context(job.tenant_id):
        return list(
            ImportSlice.objects.filter(job=job)
            .order_by("index")
            .values_list("index", "first_row", "row_count", "state")
        )


def _prepared(tenant, content: str, monkeypatch, *, rows_per_slice: int, batch_size: int = 1000):
    monkeypatch.setitem(services.SLICE_ROWS, ImportJob.Format.CSV, rows_per_slice)
    monkeypatch.setattr(services, "BATCH_SIZE", batch_size)
    job = start(tenant, upload(tenant, content))
    with tenant_context(tenant):
        slice_ids = services.import_job_prepare(job_id=job.pk)
    return job, slice_ids


def _job(job) -> ImportJob:
    with tenant_context(job.tenant_id):
        return ImportJob.objects.get(pk=job.pk)


# --- One process, slices in any order -------------------------------------------------------------


@pytest.mark.django_db
def test_slices_in_any_order_import_every_row_and_the_last_one_finishes_the_job(tenant_a, monkeypatch):
    content = "Email,First name\n" + "".join(f"p{i}@example.org,P{i}\n" for i in range(5))
    job, slice_ids = _prepared(tenant_a, content, monkeypatch, rows_per_slice=2)

    assert _slices(job) == [(0, 2, 2, "pending"), (1, 4, 2, "pending"), (2, 6, 1, "pending")]
    assert _job(job).total_rows == 5
    for slice_id in reversed(slice_ids):
        assert _job(job).status == ImportJob.Status.RUNNING
        with tenant_context(tenant_a):
            assert services.import_slice_run(slice_id=slice_id) is True

    finished = _job(job)
    assert finished.status == ImportJob.Status.SUCCEEDED
    assert (finished.last_committed_row, finished.created_count, finished.error_count) == (5, 5, 0)
    assert services.import_job_progress(finished)["percent"] == 100
    assert sorted(c.email for c in _decrypted(tenant_a)) == [f"p{i}@example.org" for i in range(5)]
    assert finished.object_key_id is None  # shredded once finished
    with tenant_context(tenant_a):
        finishes = AuditEvent.objects.filter(action="contacts.import.finish", target_id=str(job.pk))
        assert finishes.count() == 1
        assert services.import_slice_run(slice_id=slice_ids[0]) is False  # done: a late duplicate


@pytest.mark.django_db
def test_row_numbers_and_errors_are_right_in_every_slice(tenant_a, monkeypatch):
    content = (
        "Email,First name,Notes\n"
        "a@example.org,A,\n"
        'b@example.org,B,"two\nlines"\n'  # a quoted newline: slices are cut between rows, not lines
        "c@example.org,C,\n"
        "not-an-email,D,\n"
        "e@example.org,E,\n"
    )
    job, _slice_ids = _prepared(tenant_a, content, monkeypatch, rows_per_slice=1)
    finished = run(job)

    assert [first_row for _index, first_row, _count, _state in _slices(job)] == [2, 3, 4, 5, 6]
    assert row_errors(finished) == [(5, "Email (column 1)", "Email is not a valid email address")]
    assert (finished.created_count, finished.error_count, finished.total_rows) == (4, 1, 5)
    with tenant_context(tenant_a):
        assert Contact.objects.filter(tenant=tenant_a).count() == 4


@pytest.mark.django_db
def test_preparing_enqueues_one_task_per_pending_slice(
    tenant_a, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setitem(services.SLICE_ROWS, ImportJob.Format.CSV, 2)
    content = "Email\n" + "".join(f"q{i}@example.org\n" for i in range(5))
    job = start(tenant_a, upload(tenant_a, content))
    sent = []
    monkeypatch.setattr(tasks.import_slice_run, "apply_async", lambda kwargs: sent.append(kwargs))

    with django_capture_on_commit_callbacks(execute=True):
        tasks.import_job_run(tenant_id=str(tenant_a.pk), job_id=str(job.pk))
    assert [call["slice_id"] for call in sent] == [str(pk) for pk in _slice_pks(job)]
    assert {call["tenant_id"] for call in sent} == {str(tenant_a.pk)}  # ids only, no row data

    tasks.import_slice_run(tenant_id=str(tenant_a.pk), job_id=str(job.pk), slice_id=sent[0]["slice_id"])
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):  # the sweep's second call: what is left
        tasks.import_job_run(tenant_id=str(tenant_a.pk), job_id=str(job.pk))
    assert [call["slice_id"] for call in sent] == [str(pk) for pk in _slice_pks(job)[1:]]


def _slice_pks(job) -> list[int]:
    with tenant_context(job.tenant_id):
        return list(ImportSlice.objects.filter(job=job).order_by("index").values_list("pk", flat=True))


def _decrypted(tenant) -> list[Contact]:
    found = contacts(tenant)
    with tenant_context(tenant):
        for contact in found:
            _ = contact.email, contact.first_name  # decrypt inside the tenant's context
    return found


# --- Two workers at once ------------------------------------------------------------------------------


@pytest.fixture
def tenant(committed_db, monkeypatch):
    from tests.factories import BaaFactory, TenantFactory

    monkeypatch.setattr(services, "enqueue", lambda *args, **kwargs: None)  # no broker here
    slug = f"import-race-{uuid.uuid4().hex[:10]}"
    tenant = TenantFactory(name=slug, slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def _in_thread(name: str, function) -> tuple[threading.Thread, dict]:
    """Run `function` as a worker would: its own thread, database connection and transaction."""
    box: dict = {}

    def target():
        try:
            box["value"] = function()
        except Exception as error:  # noqa: BLE001 - reported to the test thread
            box["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread, box


def _run_slice(tenant, slice_id):
    def work():
        with tenant_context(tenant):
            return services.import_slice_run(slice_id=slice_id)

    return work


def _waiting_on_a_lock(owner_connection) -> bool:
    with owner_connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def _until(condition, message: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def test_two_slices_importing_the_same_new_email_make_exactly_one_contact(
    tenant, owner_connection, monkeypatch
):
    content = (
        "Email,First name\n"
        "shared@example.org,First\n"
        "only.first@example.org,A\n"
        "only.second@example.org,B\n"
        "shared@example.org,Second\n"
    )
    job, (first, second) = _prepared(tenant, content, monkeypatch, rows_per_slice=2)
    written, release = threading.Event(), threading.Event()
    real = services.contact_upsert_many

    def upsert(**kwargs):
        results = real(**kwargs)
        if threading.current_thread().name == "slice-0":
            written.set()  # slice 0 wrote "shared" and holds it, uncommitted, until released
            assert release.wait(WAIT)
        return results

    monkeypatch.setattr(services, "contact_upsert_many", upsert)
    thread_a, box_a = _in_thread("slice-0", _run_slice(tenant, first))
    assert written.wait(WAIT)
    thread_b, box_b = _in_thread("slice-1", _run_slice(tenant, second))
    _until(lambda: _waiting_on_a_lock(owner_connection), "slice 1 never waited for slice 0's new contact")
    release.set()
    thread_a.join(WAIT)
    thread_b.join(WAIT)

    assert (box_a, box_b) == ({"value": True}, {"value": True})
    stored = _decrypted(tenant)
    assert sorted(c.email for c in stored) == [
        "only.first@example.org",
        "only.second@example.org",
        "shared@example.org",
    ]
    with tenant_context(tenant):
        assert {c.email: c.first_name for c in stored}["shared@example.org"] == "Second"  # the later row
    finished = _job(job)
    assert finished.status == ImportJob.Status.SUCCEEDED
    assert (finished.created_count, finished.updated_count, finished.error_count) == (3, 1, 0)
    assert finished.last_committed_row == 4
    assert row_errors(finished) == []


def test_a_deadlock_between_two_slices_loses_no_row(tenant, owner_connection, monkeypatch):
    """Slices creating the same two contacts in opposite orders deadlock; PostgreSQL rolls one back
    whole, and its retried task imports it again as updates."""
    content = "Email\nx@example.org\ny@example.org\ny@example.org\nx@example.org\n"
    job, (first, second) = _prepared(tenant, content, monkeypatch, rows_per_slice=2, batch_size=1)
    first_batches = threading.Barrier(2, timeout=WAIT)
    calls: dict[str, int] = {}
    real = services.contact_upsert_many

    def upsert(**kwargs):
        results = real(**kwargs)
        name = threading.current_thread().name
        calls[name] = calls.get(name, 0) + 1
        if name.startswith("slice-") and calls[name] == 1:
            first_batches.wait()  # both slices hold their first new contact before going on
        return results

    monkeypatch.setattr(services, "contact_upsert_many", upsert)
    threads = [_in_thread(f"slice-{n}", _run_slice(tenant, pk)) for n, pk in enumerate((first, second))]
    for thread, _box in threads:
        thread.join(WAIT)

    outcomes = [box for _thread, box in threads]
    failed = [n for n, box in enumerate(outcomes) if "error" in box]
    assert len(failed) == 1, outcomes
    assert isinstance(outcomes[failed[0]]["error"], OperationalError)  # the task retries these
    assert _job(job).status == ImportJob.Status.RUNNING

    calls.clear()
    retried = _run_slice(tenant, (first, second)[failed[0]])()
    assert retried is True
    assert sorted(c.email for c in _decrypted(tenant)) == ["x@example.org", "y@example.org"]
    finished = _job(job)
    assert finished.status == ImportJob.Status.SUCCEEDED, (_slices(job), outcomes, finished.__dict__)
    assert finished.created_count == 2
    assert finished.created_count + finished.updated_count + finished.unchanged_count == 4


def test_a_duplicate_slice_task_skips_a_slice_another_worker_holds(tenant, owner_connection, monkeypatch):
    from django.db import transaction

    job, (slice_id,) = _prepared(tenant, "Email\nheld@example.org\n", monkeypatch, rows_per_slice=10)
    with transaction.atomic(using="owner"), owner_connection.cursor() as cursor:
        cursor.execute("SELECT id FROM contacts_importslice WHERE id = %s FOR UPDATE", [slice_id])
        assert _run_slice(tenant, slice_id)() is False
    assert contacts(tenant) == []
    assert _run_slice(tenant, slice_id)() is True
    assert _job(job).created_count == 1

"""Import jobs end to end through the services the worker task runs: outcomes, not calls."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from contacts.imports import services
from contacts.imports.parsing import FileRejected
from contacts.models import Contact, ImportJob, ImportUploadChunk
from healthmail.crypto.models import ObjectKey
from healthmail.errors import Conflict
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import contacts, import_file, run, start, upload

pytestmark = pytest.mark.django_db

GOOD = (
    "Email,First name,Last name,DOB,State,ZIP\n"
    "ada.synthetic@example.org,Ada,Synthetic,1980-02-03,CA,94110\n"
    "bob.synthetic@example.org,Bob,Synthetic,02/29/1984,TX,75001\n"
)


def test_import_creates_contacts_with_derived_columns_and_audits_counts(tenant_a):
    job = import_file(tenant_a, GOOD)

    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.total_rows, job.last_committed_row, job.created_count, job.error_count) == (2, 2, 2, 0)
    stored = {c.email: c for c in contacts(tenant_a)}
    with tenant_context(tenant_a):
        ada = stored["ada.synthetic@example.org"]
        assert (ada.first_name, ada.birth_year, ada.state, ada.zip3) == ("Ada", 1980, "CA", "941")
        events = {e.action: e for e in AuditEvent.objects.filter(tenant=tenant_a, target_id=str(job.pk))}
    assert events["contacts.import.finish"].details["created"] == 2
    assert "Ada" not in str(events["contacts.import.finish"].details)
    assert events["contacts.import.start"].details["dry_run"] is False


def test_second_import_updates_instead_of_duplicating(tenant_a):
    import_file(tenant_a, GOOD)
    job = import_file(tenant_a, GOOD.replace("Ada,", "Adele,"))

    assert (job.created_count, job.updated_count, job.unchanged_count) == (0, 1, 1)
    assert len(contacts(tenant_a)) == 2


def test_dry_run_writes_nothing_but_reports_what_it_would_do(tenant_a):
    job = import_file(tenant_a, GOOD + "bad-email,Cy,Synthetic,,,\n", dry_run=True)

    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.created_count, job.error_count) == (2, 1)
    assert contacts(tenant_a) == []


def test_upsert_by_external_id_updates_the_contact_with_that_id(tenant_a):
    first = "MRN,Email,First name\nA-100,old.address@example.org,Ada\n"
    import_file(tenant_a, first, external_id_system="epic")
    job = import_file(tenant_a, "MRN,Email\nA-100,new.address@example.org\n", external_id_system="epic")

    assert (job.created_count, job.updated_count) == (0, 1)
    (contact,) = contacts(tenant_a)
    with tenant_context(tenant_a):
        assert (contact.email, contact.first_name) == ("new.address@example.org", "Ada")


def test_external_id_column_needs_a_system_name(tenant_a):
    job = upload(tenant_a, "MRN,First name\nA-100,Ada\n")
    with pytest.raises(services.mapping.MappingInvalid, match="system"):
        start(tenant_a, job)


def test_a_mapping_without_email_or_external_id_is_refused(tenant_a):
    job = upload(tenant_a, "First name,Last name\nAda,Synthetic\n")
    with pytest.raises(services.mapping.MappingInvalid, match="Email or to External id"):
        start(tenant_a, job)


def test_starting_the_same_upload_twice_runs_it_once(tenant_a, django_capture_on_commit_callbacks):
    job = upload(tenant_a, GOOD)
    with django_capture_on_commit_callbacks() as callbacks:
        start(tenant_a, job)
        with pytest.raises(Conflict, match="already started"):
            start(tenant_a, job)
    assert len(callbacks) == 1  # one task enqueued
    run(job)
    assert len(contacts(tenant_a)) == 2


def test_finishing_shreds_the_upload(tenant_a):
    job = upload(tenant_a, GOOD)
    key_id = job.object_key_id
    with tenant_context(tenant_a):
        assert ImportUploadChunk.objects.filter(job=job).count() == 1
    job = run(start(tenant_a, job))
    with tenant_context(tenant_a):
        assert job.object_key_id is None
        assert job.shredded_at is not None
        assert not ObjectKey.objects.filter(pk=key_id).exists()
        assert not ImportUploadChunk.objects.filter(job=job).exists()


def test_upload_is_sealed_at_rest(tenant_a):
    job = upload(tenant_a, GOOD)
    with tenant_context(tenant_a):
        sealed = b"".join(
            bytes(c) for c in ImportUploadChunk.objects.filter(job=job).values_list("data", flat=True)
        )
    assert b"ada.synthetic" not in sealed
    assert len(sealed) > len(GOOD)


def test_sweep_fails_and_shreds_week_old_uploads(tenant_a):
    import datetime

    from django.utils import timezone

    job = upload(tenant_a, GOOD)
    with tenant_context(tenant_a):
        ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - datetime.timedelta(days=8))
    counts = services.import_jobs_sweep()
    assert counts["shredded"] == 1
    with tenant_context(tenant_a):
        job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert "expired" in job.failure_reason
    assert job.object_key_id is None


def test_sweep_requeues_a_job_whose_task_was_lost(tenant_a, django_capture_on_commit_callbacks):
    import datetime

    from django.utils import timezone

    job = start(tenant_a, upload(tenant_a, GOOD))
    with tenant_context(tenant_a):
        ImportJob.objects.filter(pk=job.pk).update(
            heartbeat_at=timezone.now() - datetime.timedelta(minutes=10)
        )
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.import_jobs_sweep()["requeued"] == 1
    assert len(callbacks) == 1


def test_rejected_upload_leaves_nothing_behind(tenant_a):
    with pytest.raises(FileRejected):
        upload(tenant_a, "email,email\nx@example.org,y@example.org\n")
    with tenant_context(tenant_a):
        assert not ImportJob.objects.exists()
        assert not ImportUploadChunk.objects.exists()
        assert not Contact.objects.exists()


def test_a_job_that_keeps_crashing_fails_with_the_row_it_is_stuck_at(tenant_a):
    import datetime

    from django.utils import timezone

    job = start(tenant_a, upload(tenant_a, GOOD))
    old = timezone.now() - datetime.timedelta(minutes=10)
    for _ in range(services.MAX_STALLS):
        with tenant_context(tenant_a):
            ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=old)
        assert services.import_jobs_sweep()["requeued"] == 1
    with tenant_context(tenant_a):
        ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=old)
    assert services.import_jobs_sweep()["requeued"] == 0
    with tenant_context(tenant_a):
        job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert "stopped making progress after row 1" in job.failure_reason
    assert job.object_key_id is None

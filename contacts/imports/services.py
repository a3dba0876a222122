"""Contact import: upload (sealed), configure (mapping + options), run in slices, finish, sweep.

A job runs as a chain of worker slices; each slice is one transaction holding the job row locked
(`SELECT … FOR UPDATE SKIP LOCKED`, so a duplicate task skips instead of importing twice) and moves
`last_committed_row`/`resume_position` together with the contacts it wrote. A crash rolls the
slice back and the retried or swept task resumes after the last committed slice: nothing is lost,
nothing is imported twice. Before the first write the whole file is read once (row count, and a
file that is not UTF-8 anywhere fails as a whole before anything is imported).
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.actors import Actor
from audit.models import AuditEvent
from contacts.models import ImportJob, ImportRowError
from contacts.services import UpsertStatus, contact_upsert_many
from healthmail.errors import Conflict, NotFound
from healthmail.tasks import enqueue
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import consent_columns, mapping, parsing
from .storage import CHUNK_SIZE, HEAD_SIZE, SealedFile, UploadUnreadable, UploadWriter, upload_shred

BATCH_SIZE = 1000
SLICE_ROWS = {ImportJob.Format.CSV: 25_000, ImportJob.Format.XLSX: 100_000}
SHRED_AFTER = datetime.timedelta(days=7)
STALLED_AFTER = datetime.timedelta(minutes=5)
MAX_STALLS = 3
SYSTEM = Actor.system("contacts.import")


@dataclass(frozen=True)
class ImportOptions:
    mapping: dict[int, str]  # column index → target key; unmapped columns are ignored
    dry_run: bool = False
    external_id_system: str = ""
    consent_topic: str = ""  # one topic for every row (or a "consent.topic" column)
    consent_source: str = ""  # one source for every row (or a "consent.source" column)


def import_job_get(*, tenant: Tenant, job_id) -> ImportJob:
    job = ImportJob.objects.for_tenant(tenant).filter(pk=job_id).first()
    if job is None:
        raise NotFound("No such import.")
    return job


# --- Upload -----------------------------------------------------------------------------------------


def import_upload_begin(*, tenant: Tenant, actor: Actor, file_name: str) -> UploadWriter:
    """Open a job and its sealed upload; feed the writer, then call import_upload_finish."""
    job = ImportJob.objects.create(
        tenant=tenant,
        created_by=actor.user,
        file_name=file_name.rsplit("/", 1)[-1][:200],
        file_format=ImportJob.Format.CSV,
    )
    return UploadWriter(job, max_bytes=settings.CONTACT_IMPORT_MAX_BYTES)


def import_upload_finish(*, writer: UploadWriter, actor: Actor) -> ImportJob:
    """Seal the last piece and read the file's shape; raises FileRejected for a file we cannot use."""
    job = writer.close()
    if job.size_bytes == 0:
        raise parsing.FileRejected("The file is empty.")
    job.file_format = parsing.detect_format(job.file_name, bytes(writer.head))
    if job.file_format == ImportJob.Format.XLSX:
        shape = parsing.xlsx_shape(SealedFile(job))
    else:
        shape = parsing.csv_shape(bytes(writer.head), complete=job.size_bytes <= HEAD_SIZE)
    targets = mapping.targets_for(tenant=job.tenant_id)
    if len(shape.headers) == 1 and not mapping.suggest(shape.headers, targets):
        raise parsing.FileRejected(
            "Only one column was found, so the columns cannot be mapped. Separate columns with commas, "
            "semicolons, tabs or | and put the column names in the first row."
        )
    job.headers, job.encoding, job.delimiter = shape.headers, shape.encoding, shape.delimiter
    job.save(update_fields=["file_format", "headers", "encoding", "delimiter"])
    audit.record(
        actor=actor,
        action="contacts.import.upload",
        target=job,
        tenant=job.tenant_id,
        details={"format": job.file_format, "size_bytes": job.size_bytes, "columns": len(job.headers)},
    )
    return job


@transaction.atomic
def import_upload(*, tenant: Tenant, actor: Actor, file_name: str, stream: BinaryIO) -> ImportJob:
    """Upload from an open file (tests, benchmarks, commands); a rejected file leaves nothing behind."""
    writer = import_upload_begin(tenant=tenant, actor=actor, file_name=file_name)
    for piece in iter(lambda: stream.read(CHUNK_SIZE), b""):
        writer.write(piece)
    return import_upload_finish(writer=writer, actor=actor)


# --- Configure and start ------------------------------------------------------------------------------


def import_job_start(*, tenant: Tenant, actor: Actor, job: ImportJob, options: ImportOptions) -> ImportJob:
    """Validate the mapping and queue the job. Starting the same upload twice starts it once."""
    targets = mapping.targets_for(tenant=tenant)
    plan = mapping.ImportPlan.build(
        headers=job.headers,
        column_targets=options.mapping,
        targets=targets,
        external_id_system=options.external_id_system,
        consent_topic=options.consent_topic,
        consent_source=options.consent_source,
        consent_topics={key for key, _label in consent_columns.consent_topics(tenant=tenant)},
    )
    now = timezone.now()
    started = ImportJob.objects.filter(pk=job.pk, tenant=tenant, status=ImportJob.Status.UPLOADED).update(
        status=ImportJob.Status.QUEUED,
        mapping={str(index): key for index, key in plan.column_targets.items()},
        options=plan.as_options(),
        dry_run=options.dry_run,
        queued_at=now,
        heartbeat_at=now,
    )
    if started != 1:
        raise Conflict("This import was already started (or has been removed); it runs only once.")
    job.refresh_from_db()
    audit.record(
        actor=actor,
        action="contacts.import.start",
        target=job,
        tenant=tenant,
        details={
            "dry_run": job.dry_run,
            "columns_mapped": len(plan.column_targets),
            "format": job.file_format,
        },
    )
    from .tasks import import_job_run  # the task module imports this one

    enqueue(import_job_run, tenant=tenant, job_id=str(job.pk))
    return job


# --- Run --------------------------------------------------------------------------------------------


def _rows(job: ImportJob, raw: SealedFile, *, start: int) -> Iterator[parsing.ParsedRow]:
    width = len(job.headers)
    if job.file_format == ImportJob.Format.XLSX:
        return parsing.xlsx_rows(raw, width=width, start=start)
    first_number = job.last_committed_row + 2  # spreadsheet rows: the header is row 1
    return parsing.csv_rows(raw, delimiter=job.delimiter, width=width, start=start, first_number=first_number)


def _count_rows(job: ImportJob, raw: SealedFile) -> int:
    if job.file_format == ImportJob.Format.XLSX:
        return parsing.xlsx_row_count(raw)
    return parsing.csv_row_count(raw, delimiter=job.delimiter, width=len(job.headers))


def _actor_of(job: ImportJob) -> Actor:
    return Actor.for_user(job.created_by) if job.created_by_id else SYSTEM


def import_job_run_slice(*, job_id) -> bool:
    """Import the next slice of rows. True when more remain (the caller enqueues the next slice).

    Runs inside the job's tenant context, which is one transaction: the slice commits as a whole."""
    job = (
        ImportJob.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("tenant", "created_by")
        .filter(pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING])
        .first()
    )
    if job is None:
        return False  # finished, removed, or another worker holds it right now
    if job.status == ImportJob.Status.QUEUED:
        job.status = ImportJob.Status.RUNNING
        job.started_at = timezone.now()
    plan = mapping.ImportPlan.from_job(job, targets=mapping.targets_for(tenant=job.tenant_id))
    try:
        with transaction.atomic():
            # A fresh file per pass: each pass's buffered reader closes its file when done.
            if job.total_rows is None:
                job.total_rows = _count_rows(job, SealedFile(job))
            consumed = _import_rows(job, plan, SealedFile(job), limit=SLICE_ROWS[job.file_format])
    except (parsing.FileRejected, UploadUnreadable) as error:
        _finish(job, failure=error.message)
        return False
    job.heartbeat_at = timezone.now()
    job.stalled_count = 0
    job.save()
    if consumed < SLICE_ROWS[job.file_format]:
        _finish(job)
        return False
    return True


def _import_rows(job: ImportJob, plan: mapping.ImportPlan, raw: SealedFile, *, limit: int) -> int:
    rows = itertools.islice(_rows(job, raw, start=job.resume_position), limit)
    consumed = 0
    while batch := tuple(itertools.islice(rows, BATCH_SIZE)):
        _import_batch(job, plan, batch)
        consumed += len(batch)
    return consumed


def _import_batch(job: ImportJob, plan: mapping.ImportPlan, batch: tuple[parsing.ParsedRow, ...]) -> None:
    errors: list[ImportRowError] = []
    inputs, numbers, evidence = [], [], {}

    def error(number: int, column: str, message: str) -> None:
        errors.append(
            ImportRowError(
                tenant_id=job.tenant_id, job=job, row_number=number, column=column, message=message
            )
        )

    today = timezone.localdate()
    for row in batch:
        if row.error:
            error(row.number, row.column, row.error)
            continue
        if not row.values:
            continue  # a blank line
        converted = plan.convert(row.values, job_id=job.pk, row_number=row.number, today=today)
        if converted.errors:
            for column, message in converted.errors:
                error(row.number, column, message)
            continue
        if converted.evidence is not None:
            evidence[len(inputs)] = converted.evidence
        inputs.append(converted.contact)
        numbers.append(row.number)
    counts = dict.fromkeys(UpsertStatus.values, 0)
    if inputs:
        results = contact_upsert_many(
            tenant=job.tenant, actor=_actor_of(job), inputs=inputs, source="import", dry_run=job.dry_run
        )
        recorded = []
        for position, (number, result) in enumerate(zip(numbers, results, strict=True)):
            if result.status == UpsertStatus.ERROR:
                for column, message in plan.field_errors(result.errors):
                    error(number, column, message)
                continue
            counts[result.status] += 1
            if position in evidence and not job.dry_run:
                recorded.append((result.contact_id, evidence[position]))
        if recorded:
            consent_columns.consent_evidence_record(
                tenant=job.tenant, actor=_actor_of(job), contact_ids_with_evidence=recorded
            )
    ImportRowError.objects.bulk_create(errors)
    job.created_count += counts[UpsertStatus.CREATED]
    job.updated_count += counts[UpsertStatus.UPDATED]
    job.unchanged_count += counts[UpsertStatus.UNCHANGED]
    job.error_count += len({e.row_number for e in errors})
    job.last_committed_row = batch[-1].number - 1
    job.resume_position = batch[-1].end_position


def _finish(job: ImportJob, *, failure: str = "") -> None:
    job.status = ImportJob.Status.FAILED if failure else ImportJob.Status.SUCCEEDED
    job.failure_reason = failure[:500]
    job.finished_at = timezone.now()
    job.save()
    upload_shred(job=job, actor=SYSTEM, reason="import finished")
    audit.record(
        actor=_actor_of(job),
        action="contacts.import.finish",
        target=job,
        tenant=job.tenant_id,
        outcome=AuditEvent.Outcome.FAILURE if failure else AuditEvent.Outcome.SUCCESS,
        reason=failure,
        details={
            "dry_run": job.dry_run,
            "rows": job.last_committed_row,
            "created": job.created_count,
            "updated": job.updated_count,
            "unchanged": job.unchanged_count,
            "errors": job.error_count,
        },
    )


# --- Housekeeping -------------------------------------------------------------------------------------


def import_jobs_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Shred uploads older than a week (failing jobs never finished) and re-enqueue stalled jobs."""
    now = now or timezone.now()
    counts = {"shredded": 0, "requeued": 0}
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with tenant_context(tenant_id):
            counts["shredded"] += _shred_expired(tenant_id, now)
            counts["requeued"] += _requeue_stalled(tenant_id, now)
    return counts


def _shred_expired(tenant_id, now: datetime.datetime) -> int:
    expired = ImportJob.objects.filter(
        tenant_id=tenant_id, object_key_id__isnull=False, created_at__lt=now - SHRED_AFTER
    ).select_for_update(skip_locked=True)
    shredded = 0
    for job in expired:
        if not job.is_finished:
            _finish(job, failure="The upload expired after 7 days without finishing; it was destroyed.")
        else:
            upload_shred(job=job, actor=SYSTEM, reason="import upload older than 7 days")
        shredded += 1
    return shredded


def _requeue_stalled(tenant_id, now: datetime.datetime) -> int:
    """A lost broker message or a slice that keeps crashing: enqueue again, a few times, then fail
    the job with the row it is stuck at (no job stays "running" forever)."""
    from .tasks import import_job_run

    stalled = ImportJob.objects.filter(
        tenant_id=tenant_id,
        status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING],
        heartbeat_at__lt=now - STALLED_AFTER,
    ).select_for_update(skip_locked=True)
    requeued = 0
    for job in stalled:
        if job.stalled_count >= MAX_STALLS:
            _finish(
                job,
                failure=f"The import stopped making progress after row {job.last_committed_row + 1} "
                f"(tried {MAX_STALLS + 1} times); the rows before it were imported. Fix or remove that "
                "part of the file and import the rest.",
            )
            continue
        job.stalled_count += 1
        job.heartbeat_at = now
        job.save(update_fields=["stalled_count", "heartbeat_at"])
        enqueue(import_job_run, tenant=tenant_id, job_id=str(job.pk))
        requeued += 1
    return requeued


def import_job_progress(job: ImportJob) -> dict[str, int | None]:
    percent = None
    if job.total_rows:
        percent = min(100, round(100 * job.last_committed_row / job.total_rows))
    elif job.total_rows == 0 and job.is_finished:
        percent = 100
    return {"processed": job.last_committed_row, "total": job.total_rows, "percent": percent}

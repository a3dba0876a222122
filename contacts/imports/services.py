"""Contact import: upload (sealed), configure (mapping + options), run in parallel slices, finish, sweep.

Running a job: a first pass over the file counts its rows, refuses a file that is not UTF-8
anywhere before anything is imported, and cuts it into slices at row boundaries (ImportSlice).
Workers then import the slices in parallel, each in one transaction that holds the slice row
locked (`SELECT … FOR UPDATE SKIP LOCKED`, so a duplicate task skips instead of importing twice),
marks it done and adds its counts to the job. A crash rolls the slice back and the retried or
swept task imports it again: nothing is lost, nothing is counted twice. The slice that leaves none
pending finishes the job (a compare-and-set on its status), and the upload is shredded.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
from contacts.models import ImportJob, ImportRowError, ImportSlice
from contacts.normalize import ContactInput
from contacts.services import UpsertStatus, contact_upsert_many
from healthmail.accounts.models import Membership
from healthmail.accounts.roles import PERMISSIONS
from healthmail.actors import Actor
from healthmail.crypto import blind, envelope, keys
from healthmail.errors import Conflict, NotFound, PhiFlowRefused
from healthmail.tasks import enqueue
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from healthmail.tenants.services import require_phi_intake

from . import consent_columns, mapping, parsing
from .storage import (
    CHUNK_SIZE,
    HEAD_SIZE,
    SealedFile,
    UploadUnreadable,
    UploadWriter,
    headers_seal,
    job_headers,
    upload_shred,
)

BATCH_SIZE = 1000
# Rows per slice: small enough that two workers share even a modest file, and that a slice's
# transaction (which a concurrent slice importing the same new email waits for) stays short.
SLICE_ROWS: dict[str, int] = {ImportJob.Format.CSV: 5_000, ImportJob.Format.XLSX: 100_000}
CONFLICT_RETRIES = 5
SHRED_AFTER = datetime.timedelta(days=7)
STALLED_AFTER = datetime.timedelta(minutes=5)
MAX_STALLS = 3
NO_DATA_ROWS = (
    "The file has no data rows: only a header row (or blank lines) was found, so nothing was imported."
)
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
    """Open a job and its sealed upload; feed the writer, then call import_upload_finish. A tenant
    without a BAA in force is refused before a byte of the file is stored."""
    require_phi_intake(tenant)
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
        raise parsing.FileRejected("The file is empty: it has no header row and no data rows.")
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
    headers_seal(job, shape.headers)
    job.encoding, job.delimiter = shape.encoding, shape.delimiter
    job.save(update_fields=["file_format", "headers_sealed", "column_count", "encoding", "delimiter"])
    audit.record(
        actor=actor,
        action="contacts.import.upload",
        target=job,
        tenant=job.tenant_id,
        details={"format": job.file_format, "size_bytes": job.size_bytes, "columns": job.column_count},
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
    require_phi_intake(tenant)
    targets = mapping.targets_for(tenant=tenant)
    plan = mapping.ImportPlan.build(
        headers=job_headers(job),
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


# --- Run ----------------------------------------------------------------------------------------------
# A first pass over the file (import_job_prepare) counts the rows, checks the whole file's encoding
# before anything is written, and cuts it into slices at row boundaries. Each slice is then imported
# by its own worker task (import_slice_run), in parallel, one transaction per slice.


@dataclass
class _Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    accepted: int = 0  # written, outcome not told (an importer without PHI access)
    errors: int = 0  # rows with at least one error


def _rows(job: ImportJob, raw: SealedFile, *, start: int, first_number: int) -> Iterator[parsing.ParsedRow]:
    width = job.column_count
    if job.file_format == ImportJob.Format.XLSX:
        return parsing.xlsx_rows(raw, width=width, start=start)
    return parsing.csv_rows(raw, delimiter=job.delimiter, width=width, start=start, first_number=first_number)


def _actor_of(job: ImportJob) -> Actor:
    return Actor.for_user(job.created_by) if job.created_by_id else SYSTEM


def _importer_reads_phi(job: ImportJob) -> bool:
    """Whether the person who started the import may read PHI: if not, the import's tallies say
    only "imported" (accepted): "unchanged" would confirm a re-imported guessed diagnosis, and
    created vs updated whether an address was already a patient's."""
    if not job.created_by_id:
        return True  # a system import: no person sees the tally
    return Membership.objects.filter(
        tenant_id=job.tenant_id,
        user_id=job.created_by_id,
        is_active=True,
        role__in=PERMISSIONS["contacts.view_phi"],
    ).exists()


def _pending(job_id) -> models.QuerySet:
    return ImportSlice.objects.filter(job_id=job_id, state=ImportSlice.State.PENDING)


def import_job_prepare(*, job_id) -> list[int]:
    """Cut the job's file into slices (once), and return the ids of the slices still to import.

    Called again for a running job (the sweep, after a lost task), it only lists what is left."""
    job = (
        ImportJob.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("tenant", "created_by")
        .filter(pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING])
        .first()
    )
    if job is None:
        return []  # finished, removed, or being prepared by another worker right now
    if not job.slices.exists():
        # Create the tenant's keys now if this is its first data: inside a slice, a parallel slice
        # would wait for that slice's whole transaction to see them.
        keys.current_version(job.tenant_id, envelope.DATA)
        keys.current_version(job.tenant_id, blind.INDEX)
        try:
            with transaction.atomic():
                _cut_into_slices(job, SealedFile(job))
        except (parsing.FileRejected, UploadUnreadable) as error:
            _finish(job, failure=error.message)
            return []
    if job.total_rows == 0 and job.last_committed_row == 0:
        _finish(job, failure=NO_DATA_ROWS)
        return []
    pending = list(_pending(job.pk).order_by("index").values_list("pk", flat=True))
    if not pending:
        _finish(job)
    return pending


def _cut_into_slices(job: ImportJob, raw: SealedFile) -> None:
    """Read the file once: count its rows and note where every SLICE_ROWS-th row ends. Starts
    after what a job of an earlier version already committed (0 for every new job)."""
    size = SLICE_ROWS[job.file_format]
    slices: list[ImportSlice] = []
    start, first_row, in_slice, total = job.resume_position, job.last_committed_row + 2, 0, 0

    def cut(row_count: int) -> None:
        slices.append(
            ImportSlice(
                tenant_id=job.tenant_id,
                job=job,
                index=len(slices),
                start_position=start,
                first_row=first_row,
                row_count=row_count,
            )
        )

    for row in _rows(job, raw, start=start, first_number=first_row):
        in_slice += 1  # a slice cuts the file at row boundaries, blank lines included
        if row.values or row.error:
            total += 1  # but a blank line is not a row: every row counted ends in exactly one total
        if in_slice == size:
            cut(in_slice)
            start, first_row, in_slice = row.end_position, row.number + 1, 0
    if in_slice:
        cut(in_slice)
    ImportSlice.objects.bulk_create(slices)
    now = timezone.now()
    if job.total_rows is None:
        job.total_rows = job.last_committed_row + total
    if job.status == ImportJob.Status.QUEUED:
        job.status, job.started_at = ImportJob.Status.RUNNING, now
    job.heartbeat_at = now
    job.save()


def import_slice_run(*, slice_id) -> bool:
    """Import one slice in this transaction; the slice that completes the job finishes it.

    False when there was nothing to do: the slice is done, another worker holds it right now, or
    the job has ended."""
    part = (
        ImportSlice.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("job__tenant", "job__created_by")
        .filter(pk=slice_id, state=ImportSlice.State.PENDING)
        .first()
    )
    if part is None or part.job.status != ImportJob.Status.RUNNING:
        return False
    job = part.job
    plan = mapping.ImportPlan.from_job(job, targets=mapping.targets_for(tenant=job.tenant_id))
    try:
        with transaction.atomic():
            tally = _import_rows(job, plan, SealedFile(job), part)
    except (parsing.FileRejected, UploadUnreadable, PhiFlowRefused) as error:
        _finish(job, failure=error.message)  # PhiFlowRefused: the BAA ended after the job started
        return False
    now = timezone.now()
    part.state, part.finished_at = ImportSlice.State.DONE, now
    part.created_count, part.updated_count = tally.created, tally.updated
    part.unchanged_count, part.error_count = tally.unchanged, tally.errors
    part.accepted_count = tally.accepted
    part.save()
    # This update holds the job row until the slice commits, so slices ending at the same moment
    # pass here one after the other, and exactly one of them sees that no slice is left.
    ImportJob.objects.filter(pk=job.pk).update(
        last_committed_row=F("last_committed_row") + part.row_count,
        created_count=F("created_count") + tally.created,
        updated_count=F("updated_count") + tally.updated,
        unchanged_count=F("unchanged_count") + tally.unchanged,
        accepted_count=F("accepted_count") + tally.accepted,
        error_count=F("error_count") + tally.errors,
        heartbeat_at=now,
        stalled_count=0,
    )
    if not _pending(job.pk).exists():
        _finish(job)
    return True


def import_job_run_slice(*, job_id) -> bool:
    """Prepare the job if needed, then import its next slice here. True while slices remain.

    The one-process way through a job (tests, benchmarks, commands); workers run the same
    functions, one task per slice."""
    import_job_prepare(job_id=job_id)
    part_id = _pending(job_id).order_by("index").values_list("pk", flat=True).first()
    if part_id is None:
        return False
    import_slice_run(slice_id=part_id)
    return ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING).exists()


def _import_rows(job: ImportJob, plan: mapping.ImportPlan, raw: SealedFile, part: ImportSlice) -> _Tally:
    rows = _rows(job, raw, start=part.start_position, first_number=part.first_row)
    rows = itertools.islice(rows, part.row_count)
    tally = _Tally()
    while batch := tuple(itertools.islice(rows, BATCH_SIZE)):
        with _collector_paused():
            _import_batch(job, plan, batch, tally)
    return tally


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A batch allocates a few hundred thousand short-lived objects, which sets off the cyclic
    garbage collector again and again, each pass walking the whole heap (a fifth of the import's
    time). Reference counting frees the batch's objects either way; the collector runs after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _upsert(job: ImportJob, inputs: list) -> list:
    """contact_upsert_many, again after a concurrent slice committed the same new contact.

    Two slices running at once may both create the contact of one email (or external id): the
    second INSERT waits for the first slice's transaction and then breaks the unique constraint.
    The batch was rolled back to its savepoint, so planning it again now finds the committed
    contact and updates it: one contact, no row lost."""
    for attempt in range(1, CONFLICT_RETRIES + 1):
        try:
            return contact_upsert_many(
                tenant=job.tenant,
                actor=_actor_of(job),
                inputs=inputs,
                source="import",
                dry_run=job.dry_run,
                writer_reads_phi=_importer_reads_phi(job),
            )
        except Conflict as conflict:
            if conflict.code != "concurrent_upsert" or attempt == CONFLICT_RETRIES:
                raise
    raise AssertionError("unreachable")


def _import_batch(
    job: ImportJob, plan: mapping.ImportPlan, batch: tuple[parsing.ParsedRow, ...], tally: _Tally
) -> None:
    errors: list[ImportRowError] = []
    inputs: list[ContactInput] = []
    numbers: list[int] = []
    evidence: dict[int, consent_columns.ConsentEvidenceRow] = {}

    def error(number: int, column: int | None, message: str) -> None:
        errors.append(
            ImportRowError(
                tenant_id=job.tenant_id, job=job, row_number=number, column_index=column, message=message
            )
        )

    today = timezone.localdate()
    for row in batch:
        if row.error:
            error(row.number, None, row.error)
            continue
        if not row.values:
            continue  # a blank line
        converted = plan.convert(row.values, job_id=job.pk, row_number=row.number, today=today)
        if converted.errors or converted.contact is None:  # no contact: an error says why
            for column, message in converted.errors:
                error(row.number, column, message)
            continue
        if converted.evidence is not None:
            evidence[len(inputs)] = converted.evidence
        inputs.append(converted.contact)
        numbers.append(row.number)
    if inputs:
        recorded = []
        for position, (number, result) in enumerate(zip(numbers, _upsert(job, inputs), strict=True)):
            if result.status == UpsertStatus.ERROR:
                for column, message in plan.field_errors(result.errors):
                    error(number, column, message)
                continue
            if result.status == UpsertStatus.CREATED:
                tally.created += 1
            elif result.status == UpsertStatus.UPDATED:
                tally.updated += 1
            elif result.status == UpsertStatus.ACCEPTED:
                tally.accepted += 1
            else:
                tally.unchanged += 1
            if position in evidence and not job.dry_run:
                recorded.append((result.contact_id, evidence[position]))
        if recorded:
            consent_columns.consent_evidence_record(
                tenant=job.tenant, actor=_actor_of(job), contact_ids_with_evidence=recorded
            )
    ImportRowError.objects.bulk_create(errors)
    tally.errors += len({e.row_number for e in errors})


def _finish(job: ImportJob, *, failure: str = "") -> bool:
    """End the job once (compare-and-set on its status), shred the upload, record the outcome."""
    unfinished = [ImportJob.Status.UPLOADED, ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
    ended = ImportJob.objects.filter(pk=job.pk, status__in=unfinished).update(
        status=ImportJob.Status.FAILED if failure else ImportJob.Status.SUCCEEDED,
        failure_reason=failure[:500],
        finished_at=timezone.now(),
    )
    if ended != 1:
        return False
    job.refresh_from_db()
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
            "rows": job.total_rows,
            "created": job.created_count,
            "updated": job.updated_count,
            "unchanged": job.unchanged_count,
            "accepted": job.accepted_count,
            "errors": job.error_count,
        },
    )
    return True


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
            stuck_at = _pending(job.pk).order_by("index").values_list("first_row", flat=True).first()
            after = stuck_at - 1 if stuck_at else job.last_committed_row + 1
            _finish(
                job,
                failure=f"The import stopped making progress after row {after} (tried {MAX_STALLS + 1} "
                f"times); {job.last_committed_row:,} rows of other parts of the file were imported. Fix or "
                "remove that part of the file and import the file again (imported rows come back unchanged).",
            )
            continue
        job.stalled_count += 1
        job.heartbeat_at = now
        job.save(update_fields=["stalled_count", "heartbeat_at"])
        enqueue(import_job_run, tenant=tenant_id, job_id=str(job.pk))
        requeued += 1
    return requeued


def import_job_progress(job: ImportJob) -> dict[str, int | None]:
    """Progress in rows that ended in a total (blank lines are not rows), so that processed reaches
    total exactly when created + updated + unchanged + accepted + rejected = rows."""
    percent = None
    processed = job.processed_rows
    if job.total_rows:
        percent = min(100, round(100 * processed / job.total_rows))
    elif job.total_rows == 0 and job.is_finished:
        percent = 100
    return {"processed": processed, "total": job.total_rows, "percent": percent}

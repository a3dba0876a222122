"""contacts_import: a synthetic CSV of ROWS patients imported through the real pipeline.

- The file (contacts/synthetic.py patients, 16 columns: identity, address, demographics, clinical
  codes, journey stage, tags, external id) is written to a temporary directory, then uploaded with
  `import_upload` (sealed in 1 MiB pieces) and started with `import_job_start`.
- The job then runs exactly as in production: `import_job_start` enqueues `import_job_run` on the
  broker; a real Celery marketing worker (the devstack's: prefork, `--concurrency 2`, started by
  this benchmark on its own Redis key prefix) prepares the job (one pass over the file: row count,
  encoding check, slice boundaries) and enqueues one `import_slice_run` task per slice, which its
  two processes import in parallel.
- seconds_per_million: from `queued_at` to `finished_at` of the job (prepare, parsing, validation,
  blind indexes, tokens, AES-GCM of every PHI field, batched writes, per-batch audit events,
  finishing), scaled. worker_cpu_seconds_per_million: CPU time of the worker processes over the
  import, a figure that other load on the machine disturbs much less than the elapsed time.
- peak_rss_mb: the largest peak resident set (VmHWM) of the worker's processes.
- Same-run baselines: single_process_seconds_per_million imports SINGLE_ROWS rows of the same file
  into another tenant through `import_job_run_slice` in this one process (the one-core figure,
  with its CPU time);
  baseline_copy_seconds_per_million is PostgreSQL COPY of the file into an unindexed plain-text
  temporary table (no parsing in Python, no validation, no encryption): the floor on this machine.
- load_average: /proc/loadavg before and after (the machine is shared; 2 cores).

SIZE=small imports 20,000 rows and scales the timings to per-million.
BENCH_PROFILE=1 profiles the single-process run (cProfile, to stderr).
"""

from __future__ import annotations

import cProfile
import csv
import io
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HEADERS = [
    "Email",
    "First name",
    "Last name",
    "Phone",
    "DOB",
    "Address",
    "City",
    "State",
    "ZIP",
    "MRN",
    "Gender",
    "Preferred language",
    "Conditions",
    "Medications",
    "Journey stage",
    "Tags",
]
SINGLE_ROWS = 20_000
WORKER_START_SECONDS = 90
JOB_TIMEOUT_SECONDS = 3600
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _write_file(path: Path, rows: int) -> int:
    from contacts.synthetic import synthetic_contact

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for index in range(1, rows + 1):
            c = synthetic_contact(index, seed=11)
            address = c.postal_address or {}
            writer.writerow(
                [
                    c.email,
                    c.first_name,
                    c.last_name,
                    c.phone,
                    c.birth_date.isoformat(),
                    address.get("line1", ""),
                    address.get("city", ""),
                    address.get("state", ""),
                    address.get("zip", ""),
                    (c.external_ids or {}).get("synthetic", ""),
                    (c.demographics or {}).get("gender", ""),
                    (c.demographics or {}).get("preferred_language", ""),
                    ";".join((c.clinical or {}).get("conditions", [])),
                    ";".join((c.clinical or {}).get("medications", [])),
                    c.journey_stage,
                    ";".join(c.tags or []),
                ]
            )
    return path.stat().st_size


def _baseline_copy(path: Path) -> float:
    from django.db import connection, transaction

    columns = ", ".join(f"c{i} text" for i in range(len(HEADERS)))
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE bench_import_copy ({columns}) ON COMMIT DROP")
        with cursor.cursor.copy("COPY bench_import_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            with path.open("rb") as handle:
                while piece := handle.read(1024 * 1024):
                    copy.write(piece)
    return time.perf_counter() - started


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- The worker --------------------------------------------------------------------------------------


def _use_key_prefix(prefix: str) -> None:
    """Keep this run's queues apart from every other user of the shared Redis."""
    from healthmail.celery import app

    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "global_keyprefix": prefix}


def worker_main(prefix: str, ready_file: str) -> None:
    """`python -m bench.contacts_import worker PREFIX READY_FILE`: the devstack's marketing worker."""
    import django

    django.setup()
    from celery.signals import worker_ready

    from healthmail.celery import app

    _use_key_prefix(prefix)
    worker_ready.connect(lambda **kwargs: Path(ready_file).touch(), weak=False)
    app.worker_main(
        [
            "worker",
            "-Q",
            "marketing",
            "-n",
            f"bench-marketing-{os.getpid()}@%h",
            "--concurrency",
            "2",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ]
    )


class Worker:
    def __init__(self, directory: Path):
        self.prefix = f"bench-import-{uuid.uuid4().hex[:12]}:"
        ready = directory / "worker.ready"
        self.log = directory / "worker.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.contacts_import", "worker", self.prefix, str(ready)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + WORKER_START_SECONDS
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        _use_key_prefix(self.prefix)  # this process sends the first task

    def _pids(self) -> list[int]:
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return [pid, *(int(child) for child in children)]

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self._pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        peak = 0
        for pid in self._pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                continue
        return peak / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- The runs ----------------------------------------------------------------------------------------


def _new_tenant(label: str):
    import datetime

    from healthmail.actors import Actor
    from healthmail.tenants.models import Service, Tenant
    from healthmail.tenants.services import baa_record

    slug = f"bench-import-{uuid.uuid4().hex[:8]}"
    tenant = Tenant.objects.create(name=f"Bench import {label}", slug=slug, postal_address="1 Bench Way")
    # Patient data is received only under a BAA in force (require_phi_intake).
    today = datetime.date.today()  # noqa: DTZ011 - a calendar date for the synthetic BAA
    baa_record(
        actor=Actor.system("bench"),
        tenant=tenant,
        counterparty="Bench Health",
        signed_on=today,
        effective_on=today,
        expires_on=None,
        signatory_name="Synthetic Signatory",
        document_sha256="0" * 64,
        services=Service.values,
    )
    return tenant


def _upload_and_start(tenant, path: Path, actor, *, enqueue: bool):
    from contacts.imports import mapping, services, storage
    from healthmail.tenants.context import tenant_context

    started = time.perf_counter()
    with path.open("rb") as handle, tenant_context(tenant):
        job = services.import_upload(
            tenant=tenant, actor=actor, file_name="patients.csv", stream=io.BufferedReader(handle)
        )
    upload_seconds = time.perf_counter() - started
    real_enqueue = services.enqueue
    if not enqueue:
        services.enqueue = lambda *args, **kwargs: None  # driven in this process below
    try:
        with tenant_context(tenant):
            suggested = mapping.suggest(storage.job_headers(job), mapping.targets_for(tenant=tenant))
            job = services.import_job_start(
                tenant=tenant,
                actor=actor,
                job=job,
                options=services.ImportOptions(mapping=suggested, external_id_system="synthetic"),
            )
    finally:
        services.enqueue = real_enqueue
    return job, upload_seconds, len(suggested)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _single_process(path: Path, actor) -> tuple[float, float, int]:
    """The same import in this one process, slice after slice (the one-core reference)."""
    from contacts.imports import services
    from contacts.models import ImportJob
    from healthmail.tenants.context import tenant_context

    tenant = _new_tenant("single process")
    job, _upload_seconds, _mapped = _upload_and_start(tenant, path, actor, enqueue=False)
    profiler = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    if profiler:
        profiler.enable()
    while True:
        with tenant_context(tenant):
            if not services.import_job_run_slice(job_id=job.pk):
                break
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_before
    if profiler:
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(40)
    with tenant_context(tenant):
        created = ImportJob.objects.get(pk=job.pk).created_count
    return seconds, cpu_seconds, created


def _parallel(path: Path, actor, directory: Path) -> dict:
    from contacts.models import Contact, ImportJob, ImportSlice
    from healthmail.tenants.context import tenant_context

    tenant = _new_tenant("workers")
    worker = Worker(directory)
    try:
        cpu_before = worker.cpu_seconds()
        job, upload_seconds, mapped = _upload_and_start(tenant, path, actor, enqueue=True)
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        while True:
            with tenant_context(tenant):
                job = ImportJob.objects.get(pk=job.pk)
            if job.is_finished:
                break
            if worker.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the import did not finish:\n{worker.log.read_text()[-3000:]}")
            time.sleep(0.2)
        cpu_seconds = worker.cpu_seconds() - cpu_before
        peak_rss_mb = worker.peak_rss_mb()
    finally:
        worker.stop()
    with tenant_context(tenant):
        stored = Contact.objects.filter(tenant=tenant).count()
        slices = ImportSlice.objects.filter(job=job).count()
    return {
        "job": job,
        "seconds": (job.finished_at - job.queued_at).total_seconds(),
        "prepare_seconds": (job.started_at - job.queued_at).total_seconds() if job.started_at else None,
        "upload_seconds": upload_seconds,
        "columns_mapped": mapped,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak_rss_mb,
        "stored": stored,
        "slices": slices,
    }


def run(size: str) -> tuple[dict, dict]:
    from healthmail.actors import Actor

    rows = 20_000 if size == "small" else 1_000_000
    single_rows = min(rows, SINGLE_ROWS)
    actor = Actor.system("bench")
    load_before = _load_average()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        path = folder / "patients.csv"
        file_bytes = _write_file(path, rows)
        single_path = path
        if single_rows < rows:
            single_path = folder / "single.csv"
            _write_file(single_path, single_rows)
        baseline = _baseline_copy(path)
        parallel = _parallel(path, actor, folder)
        single_seconds, single_cpu_seconds, single_created = _single_process(single_path, actor)
    job = parallel["job"]
    per_million = 1_000_000 / rows
    metrics = {
        "rows": rows,
        "file_mb": round(file_bytes / 1024 / 1024, 1),
        "status": job.status,
        "created": job.created_count,
        "row_errors": job.error_count,
        "contacts_stored": parallel["stored"],
        "columns_mapped": parallel["columns_mapped"],
        "slices": parallel["slices"],
        "worker_processes": 2,
        "seconds": round(parallel["seconds"], 1),
        "seconds_per_million": round(parallel["seconds"] * per_million, 1),
        "rows_per_second": round(rows / parallel["seconds"]),
        "prepare_seconds_per_million": round((parallel["prepare_seconds"] or 0) * per_million, 1),
        "worker_cpu_seconds_per_million": round(parallel["cpu_seconds"] * per_million, 1),
        "peak_rss_mb": round(parallel["peak_rss_mb"], 1),
        "upload_seconds_per_million": round(parallel["upload_seconds"] * per_million, 1),
        "single_process_rows": single_rows,
        "single_process_created": single_created,
        "single_process_seconds_per_million": round(single_seconds * 1_000_000 / single_rows, 1),
        "single_process_cpu_seconds_per_million": round(single_cpu_seconds * 1_000_000 / single_rows, 1),
        "single_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "baseline_copy_seconds_per_million": round(baseline * per_million, 1),
        "load_average_before": load_before,
        "load_average_after": _load_average(),
    }
    goal = {"seconds_per_million": "<= 300", "peak_rss_mb": "<= 500", "contacts_stored": rows}
    return metrics, goal


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2], sys.argv[3])

"""contacts_import: a synthetic CSV of ROWS patients imported through the real pipeline.

- The file (contacts/synthetic.py patients, 16 columns: identity, address, demographics, clinical
  codes, journey stage, tags, external id) is written to a temporary directory, then uploaded with
  `import_upload` (sealed in 1 MiB pieces) and started with `import_job_start`.
- The job runs through `import_job_run_slice`, the function the worker task calls, one slice per
  transaction, in this process (the broker hop between slices is replaced by a direct call).
- seconds_per_million covers the import job (the read-ahead pass that counts rows and checks the
  encoding, parsing, validation, blind indexes, tokens, AES-GCM of every PHI field, batched writes,
  per-batch audit events). upload_seconds_per_million is the sealed upload alone.
- peak_rss_mb: the peak resident set of this (importing) process, from getrusage.
- baseline_copy_seconds_per_million: PostgreSQL COPY of the same file into an unindexed plain-text
  temporary table (no parsing in Python, no validation, no encryption): the floor on this machine.

SIZE=small imports 20,000 rows and scales the timings to per-million.
"""

from __future__ import annotations

import cProfile
import csv
import io
import os
import pstats
import resource
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


def run(size: str) -> tuple[dict, dict]:
    from audit.actors import Actor
    from contacts.imports import mapping, services
    from contacts.models import Contact, ImportJob
    from healthmail.tenants.context import tenant_context
    from healthmail.tenants.models import Tenant

    rows = 20_000 if size == "small" else 1_000_000
    per_million = 1_000_000 / rows
    actor = Actor.system("bench")
    tenant = Tenant.objects.create(
        name="Bench import", slug=f"bench-import-{uuid.uuid4().hex[:8]}", postal_address="1 Bench Way"
    )
    # The worker chain is driven directly below; nothing goes through the broker.
    services.enqueue = lambda *args, **kwargs: None

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "patients.csv"
        file_bytes = _write_file(path, rows)
        baseline = _baseline_copy(path)

        started = time.perf_counter()
        with path.open("rb") as handle, tenant_context(tenant):
            job = services.import_upload(
                tenant=tenant, actor=actor, file_name="patients.csv", stream=io.BufferedReader(handle)
            )
        upload_seconds = time.perf_counter() - started

    with tenant_context(tenant):
        suggested = mapping.suggest(job.headers, mapping.targets_for(tenant=tenant))
        services.import_job_start(
            tenant=tenant,
            actor=actor,
            job=job,
            options=services.ImportOptions(mapping=suggested, external_id_system="synthetic"),
        )
    profiler = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
    started = time.perf_counter()
    slices = 0
    if profiler:
        profiler.enable()
    while True:
        slices += 1
        with tenant_context(tenant):
            if not services.import_job_run_slice(job_id=job.pk):
                break
    seconds = time.perf_counter() - started
    if profiler:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with tenant_context(tenant):
        job = ImportJob.objects.get(pk=job.pk)
        stored = Contact.objects.filter(tenant=tenant).count()
    metrics = {
        "rows": rows,
        "file_mb": round(file_bytes / 1024 / 1024, 1),
        "status": job.status,
        "created": job.created_count,
        "row_errors": job.error_count,
        "contacts_stored": stored,
        "columns_mapped": len(suggested),
        "slices": slices,
        "seconds": round(seconds, 1),
        "seconds_per_million": round(seconds * per_million, 1),
        "rows_per_second": round(rows / seconds),
        "upload_seconds_per_million": round(upload_seconds * per_million, 1),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "baseline_copy_seconds_per_million": round(baseline * per_million, 1),
    }
    goal = {"seconds_per_million": "<= 300", "peak_rss_mb": "<= 500", "contacts_stored": rows}
    return metrics, goal

"""Shared helpers of the import tests: upload bytes, start with a mapping, run every slice."""

from __future__ import annotations

import io

from contacts.imports import reports, services, storage
from contacts.imports.services import ImportOptions
from contacts.models import Contact, ImportJob
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context

ACTOR = Actor.system("tests")


def upload(tenant, content: bytes | str, *, name: str = "patients.csv") -> ImportJob:
    data = content.encode() if isinstance(content, str) else content
    with tenant_context(tenant):
        return services.import_upload(tenant=tenant, actor=ACTOR, file_name=name, stream=io.BytesIO(data))


def start(tenant, job: ImportJob, mapping: dict[int, str] | None = None, **options) -> ImportJob:
    with tenant_context(tenant):
        from contacts.imports import mapping as mapping_module

        if mapping is None:
            headers = storage.job_headers(job)
            mapping = mapping_module.suggest(headers, mapping_module.targets_for(tenant=tenant))
        return services.import_job_start(
            tenant=tenant, actor=ACTOR, job=job, options=ImportOptions(mapping=mapping, **options)
        )


def run(job: ImportJob) -> ImportJob:
    """Run slices until the job says it is done (what the chain of worker tasks does)."""
    for _ in range(10_000):
        with tenant_context(job.tenant_id):
            if not services.import_job_run_slice(job_id=job.pk):
                break
    with tenant_context(job.tenant_id):
        return ImportJob.objects.get(pk=job.pk)


def import_file(tenant, content, *, name: str = "patients.csv", mapping=None, **options) -> ImportJob:
    return run(start(tenant, upload(tenant, content, name=name), mapping, **options))


def row_errors(job: ImportJob) -> list[tuple[int, str, str]]:
    """(row, column label, message), as the error report shows them."""
    with tenant_context(job.tenant_id):
        return [(row, column, message) for row, _id, column, message in reports.error_rows(job)]


def contacts(tenant) -> list[Contact]:
    with tenant_context(tenant):
        return list(Contact.objects.filter(tenant=tenant))

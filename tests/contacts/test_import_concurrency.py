"""Two workers, one job: the row lock decides, so a duplicate task never imports a slice twice.

Committed data (two database connections must see it), so no module-wide `db` mark here.
"""

from __future__ import annotations

from contacts.imports import services
from contacts.models import ImportJob
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import contacts, run, start, upload

GOOD = "Email,First name\nada.lock@example.org,Ada\nbob.lock@example.org,Bob\n"


def test_a_duplicate_task_skips_a_job_another_worker_holds(committed_db, owner_connection, monkeypatch):
    import uuid

    from django.db import transaction

    from tests.factories import BaaFactory, TenantFactory

    monkeypatch.setattr(services, "enqueue", lambda *args, **kwargs: None)  # no broker in this test
    tenant = TenantFactory(slug=f"import-lock-{uuid.uuid4().hex[:10]}")
    BaaFactory(tenant=tenant)
    job = start(tenant, upload(tenant, GOOD))
    with transaction.atomic(using="owner"), owner_connection.cursor() as cursor:
        # Another worker's slice holds the job row for its whole transaction.
        cursor.execute("SELECT id FROM contacts_importjob WHERE id = %s FOR UPDATE", [job.pk])
        with tenant_context(tenant):
            assert services.import_job_run_slice(job_id=job.pk) is False
            assert ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.QUEUED
    assert contacts(tenant) == []
    assert run(job).created_count == 2

"""Tasks loaded only by the worker that tests/workers starts."""

from django.db import connection

from healthmail.celery import app
from healthmail.tasks import tenant_task


@tenant_task(ignore_result=False)
def tenants_visible() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tenant_id::text FROM accounts_membership")
        return [row[0] for row in cursor.fetchall()]


@app.task(name="tests.workers.worker_tasks.rows_without_context", ignore_result=False)
def rows_without_context() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_membership")
        return cursor.fetchone()[0]

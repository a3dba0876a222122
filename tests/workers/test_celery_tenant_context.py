"""Real Celery workers keep tenants apart too (RELIABILITY S2: the Celery context test)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings

from healthmail.celery import app
from tests.factories import MembershipFactory, TenantFactory
from tests.workers.worker_tasks import rows_without_context, tenants_visible


def _owner_url() -> str:
    owner = settings.DATABASES["owner"]
    return f"postgres://{owner['USER']}@{owner['HOST']}:{owner['PORT']}/{owner['NAME']}"


@pytest.fixture
def worker(committed_db):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": _owner_url(), "DJANGO_SETTINGS_MODULE": "healthmail.settings.test"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "healthmail",
            "worker",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            "--concurrency",
            "2",
            "--pool",
            "prefork",
            "-I",
            "tests.workers.worker_tasks",
            "--loglevel",
            "WARNING",
        ],
        env=env,
    )
    try:
        yield queue
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_tasks_see_only_their_tenant_and_nothing_without_context(worker):
    tenants = [TenantFactory(slug=f"w-{uuid.uuid4().hex[:10]}") for _ in range(2)]
    for tenant in tenants:
        for _ in range(3):
            MembershipFactory(tenant=tenant)

    results = [
        (tenant, tenants_visible.apply_async(kwargs={"tenant_id": str(tenant.pk)}, queue=worker))
        for _ in range(50)
        for tenant in tenants
    ]
    for tenant, result in results:
        assert result.get(timeout=60) == [str(tenant.pk)]
    assert rows_without_context.apply_async(queue=worker).get(timeout=30) == 0


def test_transactional_tasks_route_to_their_own_queue():
    router = app.amqp.router
    assert router.route({}, "delivery.tasks.transactional_send")["queue"].name == "transactional"
    assert router.route({}, "campaigns.tasks.campaign_launch")["queue"].name == "marketing"


def test_every_scheduled_task_exists_and_can_be_sent():
    """A beat entry naming a missing task, or with limits Celery refuses, would fail only at run time."""
    from django.conf import settings

    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        task = app.tasks.get(entry["task"])
        assert task is not None, f"{name}: no task {entry['task']}"
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        assert soft <= hard, f"{name}: soft_time_limit {soft} > time_limit {hard}"

"""System mail through a real Celery worker: the task enqueued on commit makes the first attempt while
the mail server is down, the beat sweep's retry delivers it once the server is back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings

from healthmail.accounts import services as accounts
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.sysmail.models import SystemMail
from healthmail.sysmail.tasks import system_mail_sweep
from healthmail.tenants.context import tenant_context
from tests.factories import MembershipFactory, TenantFactory
from tests.sysmail.outbox import Receiver


def _owner_url() -> str:
    owner = settings.DATABASES["owner"]
    return f"postgres://{owner['USER']}@{owner['HOST']}:{owner['PORT']}/{owner['NAME']}"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.down()


@pytest.fixture
def worker(committed_db, receiver):
    env = {
        **os.environ,
        "DATABASE_URL": _owner_url(),
        "DJANGO_SETTINGS_MODULE": "tests.sysmail.worker_settings",
        "TEST_SYSTEM_MAIL_PORT": str(receiver.port),
    }
    name = f"sysmail-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "celery", "-A", "healthmail", "worker", "-Q", "transactional"]
    command += ["-n", f"{name}@%h", "--concurrency", "1", "--pool", "solo", "--loglevel", "WARNING"]
    process = subprocess.Popen(command, env=env)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for(tenant, predicate, timeout: float = 60.0) -> SystemMail:
    deadline = time.monotonic() + timeout
    while True:
        with tenant_context(tenant):
            row = SystemMail.objects.get(tenant=tenant)
        if predicate(row) or time.monotonic() > deadline:
            return row
        time.sleep(0.2)


def test_invitation_queued_during_an_outage_is_delivered_by_the_worker_once_smtp_returns(worker, receiver):
    tenant = TenantFactory(slug=f"sysmail-{uuid.uuid4().hex[:8]}")
    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user
    email = f"worker-invitee-{uuid.uuid4().hex[:6]}@staff.example.org"
    accounts.member_invite(actor=Actor.for_user(admin), tenant=tenant, email=email, role=Role.MARKETER)

    row = _wait_for(tenant, lambda r: r.attempts >= 1 and r.state != SystemMail.State.SENDING)
    assert (row.state, row.attempts) == (SystemMail.State.RETRYING, 1)  # the task ran; SMTP was down

    receiver.up()
    time.sleep(1.1)  # the backoff
    assert system_mail_sweep() >= 1  # what beat runs: the retry goes to the worker
    row = _wait_for(tenant, lambda r: r.state == SystemMail.State.SENT)
    assert (row.state, row.attempts) == (SystemMail.State.SENT, 2)
    # (the sweep covers every tenant: mail queued by other tests in this database may arrive too)
    assert receiver.recipients().count(email) == 1

    system_mail_sweep()
    time.sleep(1)
    assert receiver.recipients().count(email) == 1  # once

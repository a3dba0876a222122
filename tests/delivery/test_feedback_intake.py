"""Every report format over SMTP, end to end: through the in-process intake and through
`manage.py inbound_smtp` as operators run it. Rows are committed (the intake's own threads and the
command's process have their own database connections), so each test makes its own tenant."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from delivery.inbound.smtp import inbound_controller
from delivery.models import SenderFeedback
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory

from .feedback_support import EXPECTED, aggregate_mail, aggregate_xml, case, dmarc_address, observed
from .servers import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parents[2]


def _tenant():
    tenant = TenantFactory(slug=f"fb-{uuid.uuid4().hex[:10]}")
    BaaFactory(tenant=tenant)
    return tenant


def _send_all(port: int, tenant) -> list:
    """One message per format to its address, then a gzip'd DMARC aggregate report."""
    cases = [case(tenant, name, sender=f"{name.replace('_', '-')}.{tenant.slug}.test") for name in EXPECTED]
    with smtplib.SMTP(LOOPBACK, port, timeout=30) as client:
        for item in cases:
            client.sendmail("", [item.rcpt], item.raw)
        xml = aggregate_xml(domain=f"postfix-dsn.{tenant.slug}.test", report_id="agg-1", passing=5, failing=2)
        client.sendmail("", [dmarc_address(tenant)], aggregate_mail(xml, compression="gzip", to="x@y"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):  # not one of our addresses
            client.sendmail("", [f"someone@{tenant.slug}.test"], cases[0].raw)
    return cases


def _wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _assert_table(tenant, cases) -> None:
    for item in cases:
        _wait_for(lambda item=item: _check(tenant, item))

    def aggregate():
        with tenant_context(tenant):
            entry = SenderFeedback.objects.get(tenant=tenant, kind=SenderFeedback.Kind.AGGREGATE)
        assert (entry.messages, entry.failed) == (7, 2)

    _wait_for(aggregate)


def _check(tenant, item) -> None:
    assert (item.name, observed(tenant, item)) == (item.name, EXPECTED[item.name])


def test_every_format_through_the_smtp_intake(committed_db):
    tenant = _tenant()
    port = free_port()
    controller = inbound_controller(LOOPBACK, port)
    controller.start()
    try:
        cases = _send_all(port, tenant)
        _assert_table(tenant, cases)
    finally:
        controller.stop()


def _owner_url() -> str:
    owner = settings.DATABASES["owner"]
    return f"postgres://{owner['USER']}@{owner['HOST']}:{owner['PORT']}/{owner['NAME']}"


def _wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            with smtplib.SMTP(LOOPBACK, port, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("manage.py inbound_smtp did not start")


def test_every_format_through_manage_py_inbound_smtp(committed_db, tmp_path):
    tenant = _tenant()
    port = free_port()
    log = tmp_path / "inbound_smtp.log"
    env = {**os.environ, "DATABASE_URL": _owner_url(), "DJANGO_SETTINGS_MODULE": "healthmail.settings.test"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "inbound_smtp", "--host", LOOPBACK, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process, log)
        cases = _send_all(port, tenant)
        _assert_table(tenant, cases)
    finally:
        process.terminate()
        process.wait(timeout=30)

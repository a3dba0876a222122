"""Delivery tests talk to real SMTP/HTTPS servers on loopback (tests/delivery/servers.py), never to
real DNS or any non-loopback address."""

from __future__ import annotations

import asyncio
import logging

import pytest

from delivery.engine.stalls import stalls_wait
from delivery.smtp.connection import TransportSettings
from delivery.smtp.message import Prepared, build_message
from delivery.smtp.pool import process_sessions_close
from delivery.smtp.timeouts import SmtpTimeouts

from .servers import SmtpKit

# Synthetic PHI: a made-up patient and diagnosis that must never appear on an unprotected wire.
PHI_NAME = "Zebediah Quixotefield"
PHI_DIAGNOSIS = "HbA1c 9.7% uncontrolled type 2 diabetes"


# aiosmtpd logs every command at INFO (addresses included): keep test output quiet and PHI-free.
logging.getLogger("mail.log").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _no_kept_sessions():
    """The engine keeps SMTP sessions per process (delivery/smtp/pool.py); the test servers outlive a
    test and change behaviour between tests, so each test starts without the last one's sessions."""
    yield
    stalls_wait(60)  # a stalled message of the test is recorded before its connection is closed
    process_sessions_close()


@pytest.fixture(scope="session")
def smtp_kit(tmp_path_factory):
    kit = SmtpKit(tmp_path_factory.mktemp("smtp-kit"))
    yield kit
    kit.stop()


@pytest.fixture
def kit(smtp_kit):
    smtp_kit.reset()
    return smtp_kit


@pytest.fixture
def transport(smtp_kit) -> TransportSettings:
    return TransportSettings(
        ca_file=smtp_kit.ca_file, local_hostname="sender.healthmail.test", timeouts=SmtpTimeouts.every(10)
    )


def phi_message(key: str, recipient: str, *, phi: bool = True, body: str | None = None) -> Prepared:
    content = build_message(
        [
            ("From", "Synthetic Clinic <care@clinic-a.test>"),
            ("To", recipient),
            ("Subject", "Your lab results"),
            ("Message-ID", f"<{key}@clinic-a.test>"),
        ],
        text=body if body is not None else f"Dear {PHI_NAME},\nyour result: {PHI_DIAGNOSIS}.\n",
    )
    return Prepared(key=key, sender="bounces+x@clinic-a.test", recipient=recipient, content=content, phi=phi)


def run(coroutine):
    return asyncio.run(coroutine)

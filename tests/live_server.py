"""The application served over real HTTP on a free loopback port, for tests that need a client other
than Django's (a browser, a generated SDK, a FHIR client, schemathesis following links)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.test.testcases import LiveServerThread


@contextmanager
def served_over_http(django_db_blocker) -> Iterator[str]:
    """`with served_over_http(django_db_blocker) as url:` the server runs until the block ends."""
    with django_db_blocker.unblock():
        thread = LiveServerThread("127.0.0.1", StaticFilesHandler)
        thread.daemon = True
        thread.start()
        thread.is_ready.wait(timeout=30)
        if thread.error:
            raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.terminate()

"""The application served over real HTTP on a free loopback port, for tests that need a client other
than Django's (a browser, a generated SDK, a FHIR client, schemathesis following links)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.test.testcases import LiveServerThread


def _static_files_only(media_handler):
    """The application behind the static files, as production serves it (WhiteNoise). Django's live
    server also serves MEDIA_ROOT under MEDIA_URL; with neither set (we store no media), that is every
    path, read from the working directory, and a long URL was a 500 (ENAMETOOLONG) from the test
    server itself, found by tests/fhir/test_fuzz.py."""
    return StaticFilesHandler(media_handler.application)


@contextmanager
def served_over_http(django_db_blocker) -> Iterator[str]:
    """`with served_over_http(django_db_blocker) as url:` the server runs until the block ends."""
    with django_db_blocker.unblock():
        thread = LiveServerThread("127.0.0.1", _static_files_only)
        thread.daemon = True
        thread.start()
        thread.is_ready.wait(timeout=30)
        if thread.error:
            raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.terminate()

"""A test that stops the shared PostgreSQL (the `postgres` outage scenario, marker `server_alone`)
runs under pytest-xdist while no other test of the run does.

Every test holds the run's lock shared; a `server_alone` test holds it exclusively. A gate lock in
front keeps new tests from starting while it waits (flock gives a waiting writer no preference of its
own). Each exclusive test bumps a generation number before letting the others go on: a process that
sees a new one closes its database connections before its next test, because the stop broke them
(Django would only notice on a request boundary or an error)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator

from django.db import connections


class RunLock:
    def __init__(self, run: str) -> None:
        base = os.path.join(tempfile.gettempdir(), run)
        self.paths = [f"{base}.tests", f"{base}.gate", f"{base}.generation"]
        self.tests, self.gate, self.generation = self.paths
        self.seen: str | None = None

    @contextlib.contextmanager
    def held(self, *, alone: bool) -> Iterator[None]:
        with open(self.gate, "a") as gate, open(self.tests, "a") as tests:
            if alone:
                fcntl.flock(gate, fcntl.LOCK_EX)
                fcntl.flock(tests, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    with open(self.generation, "a") as generation:
                        generation.write(".")  # its length is the number of exclusive tests so far
                    self.seen = self._generation()  # this process closed its own connections
                return
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(tests, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
            now = self._generation()
            if self.seen is not None and now != self.seen:
                for connection in connections.all():
                    connection.close()
            self.seen = now
            yield  # the locks go with the files

    def _generation(self) -> str:
        try:
            with open(self.generation) as generation:
                return generation.read()
        except FileNotFoundError:
            return ""

    def remove(self) -> None:
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

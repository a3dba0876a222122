"""A worker's write-ahead journal of SMTP outcomes: what the receiver answered survives a database
outage and a crash of the worker.

Before a round's outcomes go to PostgreSQL they are written to a local file and fsynced (file and
directory). The file is deleted once PostgreSQL has them. If PostgreSQL cannot be reached (or the
worker dies in between), the file stays, and the next delivery task on this host replays it first:
a 250 the receiver gave is recorded as delivered instead of being resent when its claim runs out.
Only what no journal holds (the worker's host is gone, or the reply itself was lost: RFC 1047) is
resent, with the same Message-ID.

One file per round, named after the worker; any process on the host may replay any file (a restarted
worker is another worker), one at a time (an exclusive lock per file). The writer holds that lock
from before the file appears until it has recorded the round itself: a drain starting on the same
host meanwhile skips the file instead of recording the round a second time (it did, and wrote the
round's attempt rows twice). A writer that fails to record, or dies, lets go of the lock (the kernel
drops it with the process), and the file is anyone's to replay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings

logger = logging.getLogger(__name__)
SUFFIX = ".json"


@dataclass
class Entry:
    """One round's outcomes, durable on disk and locked by its writer. As a context manager: discarded
    when the block recorded them, left for a replay (and unlocked) when it raised."""

    path: Path
    handle: IO[str] | None = None  # open, with the exclusive lock, until discarded or released

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)  # while still locked: nobody replays it in between
        self.release()

    def release(self) -> None:
        """Let go of the lock and keep the file: the next replay on this host records it."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def __enter__(self) -> Entry:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.discard()
        else:
            self.release()


def journal_dir() -> Path:
    return Path(settings.DELIVERY_JOURNAL_DIR)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_write(
    *,
    tenant_id: uuid.UUID,
    worker: str,
    rows: Sequence[Mapping[str, object]],
    attempts: Sequence[Mapping[str, object]],
) -> Entry:
    """Write one round durably: on return the outcomes survive a crash of this process or host."""
    directory = journal_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{worker.replace(':', '_').replace('/', '_')}-{uuid.uuid4().hex}"
    document = {"tenant_id": str(tenant_id), "worker": worker, "rows": rows, "attempts": attempts}
    temporary = directory / f".{name}.tmp"
    handle = open(temporary, "w", encoding="utf-8")  # kept open by the Entry: it holds the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a new file: nobody else can hold it
        # One string from the C encoder: json.dump() streams through the pure-Python one (was a third
        # of a worker's CPU per message).
        handle.write(json.dumps(document, default=str))
        handle.flush()
        os.fsync(handle.fileno())
        final = directory / f"{name}{SUFFIX}"
        os.replace(temporary, final)  # whole or absent: a reader never sees half a round
        _fsync_dir(directory)
    except BaseException:
        handle.close()
        raise
    return Entry(final, handle)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any] | None]:
    """The entry's document while this process holds it alone; None when another holds it or it is
    gone (replayed by someone else in the meantime)."""
    try:
        handle = open(path, encoding="utf-8")  # closed below, after the lock
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if os.fstat(handle.fileno()).st_nlink == 0:  # unlinked after another replay finished
            yield None
            return
        yield json.load(handle)
    finally:
        handle.close()


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def journal_replay(record: Callable[[dict[str, Any]], None]) -> int:
    """Hand every entry on this host to `record` (which writes it to PostgreSQL), oldest first, and
    delete it once recorded. An entry `record` fails on stays for the next replay. Returns how many
    entries were recorded."""
    directory = journal_dir()
    if not directory.is_dir():
        return 0
    done = 0
    for path in sorted(directory.glob(f"*{SUFFIX}"), key=_age):
        with _locked(path) as document:
            if document is None:
                continue
            record(document)
            path.unlink(missing_ok=True)
            done += 1
    if done:
        _fsync_dir(directory)
        logger.warning("delivery: journal replayed", extra={"entries": done})
    return done

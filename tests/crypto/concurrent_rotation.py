"""Index-key rotation under concurrent work: the harness the rotation tests share.

`index_rotate` runs (settles of 0.3 s, batches of 5, so every step is passed many times) while a
thread named "write" keeps calling `write` and one named "check" keeps calling `check`, which
returns what it found wrong. A write colliding with the rotation's row locks (ApplicationError) is
tried again; any other error of either thread is a failure."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable

from django.db import connection

from healthmail.crypto import index_rotation
from healthmail.errors import ApplicationError


def rotate_under_load(
    tenant_id: uuid.UUID, *, write: Callable[[], None], check: Callable[[], Iterable[tuple]]
) -> index_rotation.IndexRotation:
    stop = threading.Event()
    failures: list[tuple] = []
    rounds: Counter[str] = Counter()

    def run_write() -> None:
        try:
            while not stop.is_set():
                try:
                    write()
                except ApplicationError:
                    continue
                rounds["write"] += 1
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(("write", repr(error)))
        finally:
            connection.close()

    def run_check() -> None:
        try:
            while not stop.is_set():
                failures.extend(check())
                rounds["check"] += 1
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(("check", repr(error)))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run_write, name="write"),
        threading.Thread(target=run_check, name="check"),
    ]
    for thread in threads:
        thread.start()
    try:
        result = index_rotation.index_rotate(tenant_id, settle_seconds=0.3, batch_size=5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    if failures:
        raise AssertionError(f"during the rotation: {failures[:20]}")
    if result.damaged:
        raise AssertionError(f"damaged rows: {result.damaged}")
    if not (rounds["write"] and rounds["check"]):
        raise AssertionError(f"a thread never finished a round: {dict(rounds)}")
    return result

"""A drain's heartbeat: while it holds claims, a thread of its own (with its own database connection)
writes `now()` to the drain's WorkerHeartbeat row every DELIVERY_HEARTBEAT_SECONDS.

- A claim whose holder beats is never taken back, however long its SMTP waits last (RFC 5321 gives
  the reply to the final "." 10 minutes): a slow receiver's acceptance is not resent.
- A holder silent for DELIVERY_HEARTBEAT_GRACE_SECONDS is suspected by the next sweep or drain (it
  notes when: `suspected_at`), and dead if it is still silent a grace after that (kill -9, a lost
  host, a task killed at its hard time limit): its claims are taken back seconds after the death
  instead of when DELIVERY_LEASE_SECONDS run out.
- Two sightings, because a silence may be the database's own: during an outage that cuts everyone
  off (PostgreSQL stopped, restarted or failed over, a network partition) nobody can beat, and a
  sweep right after its return would find every live holder silent for longer than the grace. A
  live holder beats again within a second of the return (a failed beat is retried each second), long
  before the second sighting.
- A claim whose holder has no heartbeat row at all falls back to its lease (`lease_until`).

The rule is the sweeper's reclaim query (sweeper.py), on the database's clock only (`now()`).
"""

from __future__ import annotations

import threading

from django.db import connection

from healthmail.outages import OUTAGE_ERRORS

_BEAT = """
INSERT INTO delivery_workerheartbeat (worker, beat_at) VALUES (%s, now())
ON CONFLICT (worker) DO UPDATE SET beat_at = now()
"""
_FORGET = "DELETE FROM delivery_workerheartbeat WHERE beat_at < now() - interval '1 day'"


def heartbeat_beat(worker: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_BEAT, [worker])


def heartbeats_forget() -> int:
    """Rows of workers gone for a day (their claims were taken back long ago)."""
    with connection.cursor() as cursor:
        cursor.execute(_FORGET)
        forgotten: int = cursor.rowcount
        return forgotten


class Heartbeat:
    """Beats for `worker` every `interval` seconds from start() until stop(). A beat that fails
    (PostgreSQL down) is retried each second on a new connection, so a live worker beats again
    within a second of the database's return."""

    def __init__(self, worker: str, *, interval: float) -> None:
        self.worker = worker
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {worker}", daemon=True)

    def start(self) -> None:
        self._beat()  # the first beat before any claim: nobody may judge the holder without a row
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> bool:
        try:
            heartbeat_beat(self.worker)
        except OUTAGE_ERRORS:
            connection.close()  # a broken connection is not reused
            return False
        return True

    def _run(self) -> None:
        try:
            wait = self.interval
            while not self._stopped.wait(wait):
                wait = self.interval if self._beat() else min(1.0, self.interval)
        finally:
            connection.close()  # this thread's own connection

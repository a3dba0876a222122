"""Stalled messages that outlive their round: recorded when their reply comes, claims kept meanwhile.

A message whose receiver is silent for DELIVERY_SMTP_STALL_SECONDS is not waited for by its round
(transport.py): the round records the other outcomes and the drain claims its next batch at once.
Its wait goes on, on the process's SMTP loop, for up to the RFC's timeouts (10 minutes for the reply
to the final "."). One thread per process (the keeper) then:

- beats for the holder of every stalled message still waiting (heartbeat.py), so its claim stays its
  own however long the wait, also after its drain has ended: a late acceptance is never resent;
- records each one's outcome when its wait ends, journal first, exactly as a round does (send.py);
- stops when nothing is left to wait for.

A worker process that shuts down waits for its stalled messages first (`stalls_wait`, called from
the Celery worker's process shutdown). A process killed meanwhile stops beating: its stalled
messages are taken back after the grace and counted as ambiguous (RFC 1047), as any hand-off of a
dead worker.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable

from django.db import connection

from delivery.smtp.outcomes import Outcome, Status
from healthmail.outages import OUTAGE_ERRORS

from .heartbeat import heartbeat_beat

logger = logging.getLogger(__name__)

Record = Callable[[Outcome], None]


class StallKeeper:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: Counter[str] = Counter()  # worker → its stalled messages still waiting
        self._ended: queue.Queue[tuple[str, str, concurrent.futures.Future[Outcome], Record]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self.interval = 5.0
        self._pid = os.getpid()

    def hold(
        self,
        *,
        worker: str,
        key: str,
        waiting: concurrent.futures.Future[Outcome],
        record: Record,
        interval: float,
    ) -> None:
        """Keep `worker`'s claim beating until `waiting` ends, then call `record` with its outcome."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's thread and holders are not its own
                self.__init__()  # type: ignore[misc]
            self._holders[worker] += 1
            self.interval = min(self.interval, interval) if self._thread is not None else interval
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="delivery stalls", daemon=True)
                self._thread.start()
        waiting.add_done_callback(lambda ended: self._ended.put((worker, key, ended, record)))

    def waiting(self) -> int:
        with self._lock:
            return sum(self._holders.values())

    def wait(self, timeout: float) -> bool:
        """True once every stalled message has been recorded (False: `timeout` passed first)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        try:
            next_beat = 0.0
            while True:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + (
                        self.interval if self._beat() else min(1.0, self.interval)
                    )
                try:
                    worker, key, ended, record = self._ended.get(
                        timeout=max(0.0, next_beat - time.monotonic())
                    )
                except queue.Empty:
                    continue
                self._record_ended(key, ended, record)
                with self._lock:
                    self._holders[worker] -= 1
                    if self._holders[worker] <= 0:
                        del self._holders[worker]
                    if not self._holders and self._ended.empty():
                        self._thread = None
                        self._idle.set()
                        return
        finally:
            connection.close()  # this thread's own connection

    def _beat(self) -> bool:
        with self._lock:
            workers = list(self._holders)
        try:
            for worker in workers:
                heartbeat_beat(worker)
        except OUTAGE_ERRORS:
            connection.close()  # retried within a second on a new connection
            return False
        return True

    @staticmethod
    def _record_ended(key: str, ended: concurrent.futures.Future[Outcome], record: Record) -> None:
        # Cancelled (the process stopping) or broken: the reply is unknown (RFC 1047).
        if ended.cancelled():
            failure = "CancelledError"
        elif (error := ended.exception()) is not None:
            failure = error.__class__.__name__
        else:
            failure = ""
        if failure:
            reason = f"the worker stopped waiting for the reply: {failure}"
            outcome = Outcome(key, Status.AMBIGUOUS, reason=reason)
        else:
            outcome = ended.result()
        try:
            record(outcome)
        except OUTAGE_ERRORS:
            # The journal has it (send.py writes it first): replayed by the next drain or sweep here.
            connection.close()
            logger.warning("delivery: stalled outcome left in the journal (database unavailable)")
        except Exception:
            logger.exception("delivery: stalled outcome not recorded")


KEEPER = StallKeeper()


def stalls_wait(timeout: float) -> bool:
    """Wait until this process's stalled messages are recorded (a worker process shutting down)."""
    return KEEPER.wait(timeout)

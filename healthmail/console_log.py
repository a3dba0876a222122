"""A readable terminal for `make run`: one short line per event (LOG_FORMAT=console).

Web requests are summarised as `GET /campaigns/<uuid:campaign_id>/ 200 12 ms` (the route pattern,
never the path or query string, which may carry PHI). Celery's bookkeeping is dropped: a periodic
task's "Sending due task" and "received" lines, and "succeeded" lines of tasks that did nothing (they
returned 0, None or an empty value). Everything is still written in full, as JSON, to LOG_FILE.
"""

from __future__ import annotations

import logging
import re

# Return values (as Celery's trace logs them) of a task run that had nothing to do.
IDLE_RESULTS = frozenset({"0", "None", "[]", "{}", "()", "False", "''", "0.0", "Counter()"})
# Periodic bookkeeping whose work is only the echo of other events (sealing audit rows, checkpoints).
BOOKKEEPING_TASKS = frozenset({"audit.tasks.audit_seal", "audit.tasks.audit_checkpoint"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_DROPPED = {
    "celery.beat": ("Scheduler: Sending due task",),
    "celery.worker.strategy": ("Task ",),  # "Task x[id] received"
    "celery.worker.consumer.connection": ("Connected to",),
    "celery.worker.consumer.mingle": ("mingle:",),
}


class QuietFilter(logging.Filter):
    """Drops periodic-task chatter from the terminal (INFO and below only: warnings always pass)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        prefixes = _DROPPED.get(record.name)
        if prefixes and record.getMessage().startswith(prefixes):
            return False
        if record.name == "celery.app.trace":
            data = getattr(record, "data", None) or {}
            if "return_value" in data and (
                _idle(str(data["return_value"])) or data.get("name") in BOOKKEEPING_TASKS
            ):
                return False
        if record.name == "healthmail.request" and getattr(record, "route", "") == "unmatched":
            return int(getattr(record, "status", 0)) >= 400  # static files: only failures
        return True


def _idle(result: str) -> bool:
    """Nothing done: an empty result, or one whose every number is zero ({'launch': 0, 'sending': 0})."""
    numbers = _NUMBER.findall(result)
    return result in IDLE_RESULTS or (bool(numbers) and all(float(n) == 0 for n in numbers))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        clock = self.formatTime(record, "%H:%M:%S")
        level = "" if record.levelno == logging.INFO else f" {record.levelname}"
        # What a logger call passed in `extra` lands in the record's __dict__ (LogRecord declares none).
        extra = record.__dict__
        if record.name == "healthmail.request" and "route" in extra:
            text = (
                f"{extra['method']} {extra['route']} {extra['status']} {float(extra['duration_ms']):.0f} ms"
            )
            source = "web"
        elif record.name == "celery.app.trace" and "return_value" in (extra.get("data") or {}):
            data = extra["data"]
            runtime = float(data.get("runtime", 0))
            text = f"{data.get('name', 'task')} did work: {data['return_value']} ({runtime:.2f} s)"
            source = "task"
        else:
            text = record.getMessage()
            source = record.name.removeprefix("healthmail.")
        line = f"{clock}{level} {source}: {text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

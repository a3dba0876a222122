"""A readable terminal for `make run`: one short line per event (LOG_FORMAT=console).

Web requests are summarised as `GET /campaigns/<uuid:campaign_id>/ 200 12 ms` (the route pattern,
never the path or query string, which may carry PHI). Celery's bookkeeping is dropped: a periodic
task's "Sending due task" and "received" lines, and "succeeded" lines of tasks that did nothing (they
returned 0, None or an empty value). Everything is still written in full, as JSON, to LOG_FILE.
"""

from __future__ import annotations

import logging

# Return values (as Celery's trace logs them) of a task run that had nothing to do.
IDLE_RESULTS = frozenset({"0", "None", "[]", "{}", "()", "False", "''", "0.0", "Counter()"})
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
            if "return_value" in data and str(data["return_value"]) in IDLE_RESULTS:
                return False
        if record.name == "healthmail.request" and getattr(record, "route", "") == "unmatched":
            return int(getattr(record, "status", 0)) >= 400  # static files: only failures
        return True


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        clock = self.formatTime(record, "%H:%M:%S")
        level = "" if record.levelno == logging.INFO else f" {record.levelname}"
        if record.name == "healthmail.request" and hasattr(record, "route"):
            text = f"{record.method} {record.route} {record.status} {float(record.duration_ms):.0f} ms"
            source = "web"
        elif record.name == "celery.app.trace" and "return_value" in (getattr(record, "data", None) or {}):
            data = record.data
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

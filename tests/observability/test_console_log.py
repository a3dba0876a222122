"""LOG_FORMAT=console (`make run`): one readable line per event, idle periodic tasks silent, the
JSON records in LOG_FILE; and the favicon exists."""

import logging

import pytest
from django.contrib.staticfiles import finders

from healthmail.console_log import ConsoleFormatter, QuietFilter


def _record(name, message, level=logging.INFO, **extra):
    record = logging.LogRecord(name, level, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        (_record("celery.beat", "Scheduler: Sending due task audit-seal (audit.tasks.audit_seal)"), False),
        (_record("celery.worker.strategy", "Task audit.tasks.audit_seal[1] received"), False),
        (_record("celery.app.trace", "Task a[1] succeeded in 0.05s: 0", data={"return_value": "0"}), False),
        (_record("celery.app.trace", "Task a[1] succeeded: None", data={"return_value": "None"}), False),
        (_record("celery.app.trace", "Task a[1] succeeded in 0.05s: 3", data={"return_value": "3"}), True),
        (_record("celery.app.trace", "s", data={"return_value": "{'launch': 0, 'sending': 0}"}), False),
        (_record("celery.app.trace", "s", data={"return_value": "{'launch': 0, 'sending': 1}"}), True),
        (
            _record("celery.app.trace", "s", data={"name": "audit.tasks.audit_seal", "return_value": "7"}),
            False,
        ),
        (_record("celery.beat", "Scheduler: Sending due task x", level=logging.WARNING), True),
        (_record("celery.app.trace", "Task a[1] raised: KeyError", level=logging.ERROR), True),
        (_record("delivery.engine", "delivered 12 messages"), True),
        (_record("healthmail.request", "request", route="unmatched", status=304), False),  # static files
        (_record("healthmail.request", "request", route="unmatched", status=404), True),
        (_record("healthmail.request", "request", route="/campaigns/", status=200), True),
    ],
)
def test_quiet_filter_keeps_only_work_and_trouble(record, shown):
    assert QuietFilter().filter(record) is shown


def test_request_is_one_line_with_the_route_only():
    record = _record(
        "healthmail.request",
        "request",
        method="GET",
        route="/campaigns/<uuid:campaign_id>/",
        status=200,
        duration_ms=12.4,
    )
    line = ConsoleFormatter().format(record)
    assert line.endswith(" web: GET /campaigns/<uuid:campaign_id>/ 200 12 ms")
    assert "\n" not in line
    warning = ConsoleFormatter().format(_record("delivery.engine", "MX down", level=logging.WARNING))
    assert warning.endswith(" WARNING delivery.engine: MX down")
    task = _record(
        "celery.app.trace",
        "Task audit.tasks.audit_seal[1] succeeded in 0.08s: 3",
        data={"name": "audit.tasks.audit_seal", "return_value": "3", "runtime": 0.081},
    )
    assert ConsoleFormatter().format(task).endswith(" task: audit.tasks.audit_seal did work: 3 (0.08 s)")


@pytest.mark.django_db
def test_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("healthmail/favicon.svg")
    assert finders.find("healthmail/favicon.svg")

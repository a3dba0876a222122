"""What the logging tests share: the lines the configured console handler prints, as JSON."""

import io
import json
import logging

import pytest

# The delivery engine's log lines are read from drains against the loopback SMTP servers.
from tests.delivery.conftest import _no_kept_sessions, kit, smtp_kit, transport  # noqa: F401


@pytest.fixture
def json_log():
    """A stream receiving what the configured `console` handler would print, at every level."""
    [console] = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(console.formatter)
    for log_filter in console.filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous_level)


def json_lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

from __future__ import annotations

import re
import uuid

import pytest
import redis
from django.core.cache import caches
from django.test import Client
from django.urls import URLResolver, get_resolver

from .support import PrivateRedis, broker_at

_CONVERTER = re.compile(r"<(?:(\w+):)?\w+>")
_SAMPLE = {"uuid": lambda: str(uuid.uuid4()), "int": lambda: "1"}


def _walk(patterns, prefix: str = "") -> list[str]:
    routes = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += _walk(pattern.url_patterns, route)
        elif not route.endswith("$"):  # the /api/ catch-all regex: a fixed 404 that reads nothing
            routes.append(route)
    return routes


def every_route() -> list[str]:
    """Every URL the project serves, its parameters filled with values of the right shape."""
    return [
        "/" + _CONVERTER.sub(lambda m: _SAMPLE.get(m.group(1) or "str", lambda: "x")(), route)
        for route in _walk(get_resolver().url_patterns)
    ]


@pytest.fixture
def raw_client():
    """A test client that answers as production does: a view's exception becomes the error page."""
    return Client(raise_request_exception=False)


@pytest.fixture
def redis_down(settings):
    """The cache and the Celery broker on a Redis of the test's own, which is then shut down."""
    server = PrivateRedis()
    caches["local"].clear()  # this process's counters start empty, as in a fresh outage
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": server.url}}
    try:
        with broker_at(server.url):
            server.shutdown()
            with pytest.raises(redis.exceptions.ConnectionError):
                caches["default"].get("anything")  # the outage is real
            yield server
    finally:
        server.close()

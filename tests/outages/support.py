"""Real outages for tests: a Redis server of the test's own that is shut down (SHUTDOWN NOSAVE), and
PostgreSQL made unreachable for this process's application connection (its port swapped for one
nobody listens on, as after a server stop: every connect is refused)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator

import redis
from django.db import connections

from healthmail.celery import app
from healthmail.devstack import _redis_bin


def free_port() -> int:
    """A port nobody listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of one test's own: stopping it disturbs nobody else's tests."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        """(Re)start on the same port, empty, as a restarted server without persistence."""
        self.process = subprocess.Popen(
            [
                _redis_bin(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.exceptions.ConnectionError):
                redis.Redis.from_url(self.url).ping()
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.05)

    def shutdown(self) -> None:
        """SHUTDOWN NOSAVE, as an operator or a crash would: the server is gone with its data."""
        with contextlib.suppress(redis.exceptions.ConnectionError):
            redis.Redis.from_url(self.url).shutdown(nosave=True)
        self.process.wait(timeout=10)

    def kill(self) -> None:
        """kill -9: the process is gone without a word to its clients."""
        self.process.kill()
        self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point this process's Celery producer at `url`. The app caches its pools, which come from
    kombu's registry keyed by URL: forgetting the cached ones is enough (closing them would close
    the registry's pool for every later test of the process)."""
    saved = app.conf.broker_url
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url = saved
        app._pool = None
        app.amqp._producer_pool = None


@contextlib.contextmanager
def database_unreachable(alias: str = "default") -> Iterator[None]:
    """Every new connection of `alias` is refused until the block ends (the server looks stopped)."""
    connection = connections[alias]
    saved = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = free_port()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved

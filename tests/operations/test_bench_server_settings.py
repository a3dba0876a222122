"""The bench's server settings: those taken at the server's start (shared_buffers) restart the
embedded cluster, but never under another run that uses it."""

from __future__ import annotations

import fcntl
import os

import psycopg
import pytest

from healthmail import devstack


class _Admin:
    """An owner connection that records statements; `pending` are the settings awaiting a restart."""

    def __init__(self, pending=(), refuse: bool = False):
        self.statements: list[str] = []
        self.pending = [(name,) for name in pending]
        self.refuse = refuse

    def execute(self, statement, params=None):
        self.statements.append(statement)
        if self.refuse and statement.startswith("ALTER SYSTEM"):
            raise psycopg.errors.InsufficientPrivilege("must be superuser")
        return self

    def fetchall(self):
        return self.pending


def test_start_settings_are_set_and_reported_pending():
    admin = _Admin(pending=["shared_buffers"])
    assert devstack._bench_server_settings(admin) == ["shared_buffers"]
    assert "ALTER SYSTEM SET shared_buffers = '2GB'" in admin.statements
    assert "ALTER SYSTEM SET max_wal_size = '16GB'" in admin.statements


def test_a_server_we_may_not_configure_runs_as_it_is():
    assert devstack._bench_server_settings(_Admin(pending=["shared_buffers"], refuse=True)) == []


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    """The embedded cluster's stop and start, recorded instead of run."""
    calls: list[str] = []
    monkeypatch.setattr(devstack, "STATE", tmp_path)
    monkeypatch.setattr(devstack, "stop_postgres", lambda: calls.append("stop"))
    monkeypatch.setattr(devstack, "start_postgres", lambda: calls.append("start") or ("url", True))
    return calls


def test_restart_when_alone_then_a_user_among_others_again(cluster):
    services = devstack.Services({}, [], devstack._take_user_lock())
    assert services.restart_postgres()
    assert cluster == ["stop", "start"]
    other = os.open(devstack.STATE / "users.lock", os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)  # another run may start: shared again
    finally:
        os.close(other)
        services.stop()


def test_no_restart_under_another_run(cluster):
    services = devstack.Services({}, [], devstack._take_user_lock())
    other = devstack._take_user_lock()
    try:
        assert not services.restart_postgres()
        assert cluster == []
    finally:
        os.close(other)
        services.stop()

"""The worker's outcome journal (delivery/engine/journal.py): a round is recorded once. While its writer
records it, another drain on the same host leaves the file alone; once the writer failed or died, the
file is anyone's to replay."""

from __future__ import annotations

import multiprocessing
import os
import uuid

import pytest

from delivery.engine.journal import journal_replay, journal_write


@pytest.fixture
def journal(settings, tmp_path):
    settings.DELIVERY_JOURNAL_DIR = str(tmp_path / "journal")
    return tmp_path / "journal"


def _entry(worker: str = "host:1:abc"):
    rows = [{"id": str(uuid.uuid4()), "state": "delivered_tls", "reason": ""}]
    attempts = [{"message_id": rows[0]["id"], "outcome": "delivered", "smtp_code": 250}]
    return journal_write(tenant_id=uuid.uuid4(), worker=worker, rows=rows, attempts=attempts), rows


def test_a_round_its_writer_is_recording_is_not_recorded_by_another_drain(journal):
    entry, _ = _entry()
    recorded: list[dict] = []

    assert journal_replay(recorded.append) == 0  # a drain starting meanwhile on this host
    assert recorded == []
    assert entry.path.exists()  # still durable: the writer has not recorded it yet

    entry.discard()  # the writer recorded it
    assert journal_replay(recorded.append) == 0
    assert list(journal.glob("*.json")) == []


def test_a_round_whose_writer_failed_to_record_it_is_replayed_once(journal):
    entry, rows = _entry()
    with pytest.raises(ConnectionError), entry:
        raise ConnectionError("PostgreSQL went away")  # the settle failed: the entry stays, unlocked
    assert entry.path.exists()

    recorded: list[dict] = []
    assert journal_replay(recorded.append) == 1
    assert [document["rows"] for document in recorded] == [rows]
    assert journal_replay(recorded.append) == 0
    assert len(recorded) == 1


def test_a_round_recorded_by_its_writer_leaves_nothing(journal):
    entry, _ = _entry()
    with entry:
        pass
    assert list(journal.glob("*.json")) == []


def _write_and_die(directory: str) -> None:
    from django.conf import settings

    settings.DELIVERY_JOURNAL_DIR = directory
    _entry("host:2:dead")
    os._exit(0)  # killed before recording: no discard, no release; the kernel drops the lock


def test_a_round_whose_writer_died_is_replayed(journal):
    child = multiprocessing.get_context("fork").Process(target=_write_and_die, args=(str(journal),))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0

    recorded: list[dict] = []
    assert journal_replay(recorded.append) == 1
    assert recorded[0]["worker"] == "host:2:dead"

"""The dry run: synthetic sample contacts walk a definition; branches, event waits and the consent
question go both ways for some of them, and nothing touches the database."""

from __future__ import annotations

import pytest

from journeys.definition import DefinitionInvalid
from journeys.services import dryrun

BODY = {
    "entry": {"kind": "event", "event": "appointment.booked"},
    "start": "welcome",
    "steps": {
        "welcome": {
            "type": "send",
            "template_id": "t",
            "purpose": "marketing",
            "topic": "marketing_newsletters",
            "next": "visit",
        },
        "visit": {
            "type": "wait_event",
            "event": "visit.done",
            "timeout_seconds": 86400,
            "next": "check",
            "timeout_next": "done",
        },
        "check": {"type": "branch", "condition": {"tag": "vip"}, "yes": "tagged", "no": "done"},
        "tagged": {"type": "update", "add_tag": "followed_up", "next": "done"},
        "done": {"type": "exit"},
    },
}


def test_the_first_two_samples_take_opposite_paths():
    everything, nothing = dryrun.dry_run(BODY)[:2]

    assert [key for key, _ in everything.path] == ["welcome", "visit", "check", "tagged", "done"]
    assert everything.outcome == "completes the journey"
    assert nothing.path == [("welcome", "email refused: no opt-in to the topic")]
    assert nothing.outcome == "exits: the send gate refused"


def test_samples_cover_every_path_and_are_the_same_each_time():
    first = dryrun.dry_run(BODY, count=30)
    again = dryrun.dry_run(BODY, count=30)
    paths = {tuple(key for key, _ in s.path) for s in first}

    assert [s.path for s in first] == [s.path for s in again]
    assert ("welcome", "visit", "done") in paths  # the visit never came: the timeout path
    assert ("welcome", "visit", "check", "done") in paths  # no tag: the branch's no
    assert all(s.label.startswith("Sample ") for s in first)


def test_a_transactional_send_needs_no_opt_in_and_waits_add_up():
    body = {
        "entry": {"kind": "manual"},
        "start": "remind",
        "steps": {
            "remind": {"type": "send", "template_id": "t", "purpose": "treatment", "next": "wait"},
            "wait": {"type": "wait", "seconds": 2 * 86400, "next": "done"},
            "done": {"type": "exit"},
        },
    }
    for sample in dryrun.dry_run(body):
        assert sample.path == [("remind", "email queued"), ("wait", "waits 2 d"), ("done", "exit")]
        assert sample.elapsed_seconds == 2 * 86400


def test_an_invalid_definition_is_not_dry_run():
    with pytest.raises(DefinitionInvalid):
        dryrun.dry_run({"entry": {"kind": "manual"}, "start": "x", "steps": {}})

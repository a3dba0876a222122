"""Journey definitions with the step kinds beyond send/wait/branch: bad steps and rules refused with
where they are, loops without a wait refused at save, split paths by weight, quiet hours over midnight."""

from __future__ import annotations

import datetime
import uuid
import zoneinfo

import pytest

from journeys import definition as spec
from journeys.services import rules

from .steps_support import EXIT

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_wakeups")]


@pytest.mark.parametrize(
    ("step", "where"),
    [
        ({"type": "list", "list": "Bad List", "action": "add", "next": "done"}, "steps.s.list"),
        ({"type": "list", "list": "recall", "action": "toggle", "next": "done"}, "steps.s.action"),
        ({"type": "webhook", "next": "done"}, "steps.s.endpoint_id"),
        ({"type": "notify", "role": "patient", "subject": "x", "next": "done"}, "steps.s.role"),
        ({"type": "notify", "role": "marketer", "subject": "", "next": "done"}, "steps.s.subject"),
        ({"type": "jump"}, "steps.s"),
        ({"type": "jump", "to": "done", "journey_id": "x"}, "steps.s"),
        (
            {"type": "split", "variants": [{"weight": 1, "next": "done"}], "metric": "open"},
            "steps.s.variants",
        ),
        (
            {"type": "split", "variants": [{"weight": 0, "next": "done"}] * 2, "metric": "open"},
            "steps.s.variants.0.weight",
        ),
        ({"type": "split", "variants": [{"weight": 1, "next": "done"}] * 2, "metric": "x"}, "steps.s.metric"),
        (
            {
                "type": "split",
                "variants": [{"weight": 1, "next": "nowhere"}, {"weight": 1, "next": "done"}],
                "metric": "open",
            },
            "steps.s.variants.0.next",
        ),
        (
            {"type": "update", "set_field": {"field": "email", "value": "x"}, "next": "done"},
            "steps.s.set_field",
        ),
    ],
)
def test_bad_new_steps_are_refused_with_where(step, where):
    body = {"entry": {"kind": "manual"}, "start": "s", "steps": {"s": step, **EXIT}}

    assert where in [p.where for p in spec.problems_of(body)]


@pytest.mark.parametrize(
    "rule",
    [
        {"reentry": "sometimes"},
        {"reentry": {"after_days": 0}},
        {"quiet_hours": {"start": "21:00", "end": "21:00"}},
        {"quiet_hours": {"start": "25:00", "end": "08:00"}},
        {"frequency_cap": {"count": 0, "days": 7}},
        {"goal": {"tag": "Not A Tag"}},
    ],
)
def test_bad_journey_rules_are_refused(rule):
    body = {"entry": {"kind": "manual"}, "start": "done", "steps": dict(EXIT), **rule}

    assert spec.problems_of(body)


def test_jumps_and_splits_forming_a_loop_without_a_wait_are_refused_at_save():
    jump_loop = {
        "a": {"type": "update", "add_tag": "x", "next": "b"},
        "b": {"type": "jump", "to": "a"},
    }
    split_loop = {
        "a": {"type": "split", "metric": "open",
              "variants": [{"weight": 1, "next": "a"}, {"weight": 1, "next": "done"}]},
        **EXIT,
    }  # fmt: skip
    waited = {
        "a": {"type": "wait", "seconds": 3600, "next": "b"},
        "b": {"type": "jump", "to": "a"},
    }
    for steps, refused in ((jump_loop, True), (split_loop, True), (waited, False)):
        body = {"entry": {"kind": "manual"}, "start": "a", "steps": steps}
        assert bool(spec.problems_of(body)) is refused, steps


def test_split_paths_follow_the_weights_and_never_change_for_a_position():
    variants = [{"weight": 80, "next": "a"}, {"weight": 20, "next": "b"}]
    ids = [uuid.uuid4() for _ in range(2000)]
    paths = [spec.split_path(i, "ab", variants) for i in ids]

    assert 0.75 < paths.count(0) / len(paths) < 0.85
    assert paths == [spec.split_path(i, "ab", variants) for i in ids]  # a retried walk takes the same path


def test_quiet_hours_over_midnight_end_next_morning_local_time():
    zone = zoneinfo.ZoneInfo("America/Chicago")
    start, end = datetime.time(21, 0), datetime.time(8, 0)
    late = datetime.datetime(2027, 3, 9, 22, 30, tzinfo=zone)
    early = datetime.datetime(2027, 3, 10, 6, 0, tzinfo=zone)
    noon = datetime.datetime(2027, 3, 10, 12, 0, tzinfo=zone)

    assert rules.quiet_end(late, start, end) == datetime.datetime(2027, 3, 10, 8, 0, tzinfo=zone)
    assert rules.quiet_end(early, start, end) == datetime.datetime(2027, 3, 10, 8, 0, tzinfo=zone)
    assert rules.quiet_end(noon, start, end) is None

"""A journey definition: its entry trigger, its steps and how they connect, checked before it is saved.

    {"entry": {"kind": "event", "event": "appointment.booked"},
     "start": "remind", "cycle_cap": 3, "goal": {"event": "appointment.kept"},
     "sender_domain_id": "...", "sender_name": "Synthetic Clinic",
     "steps": {
       "remind": {"type": "send", "template_id": "...", "purpose": "treatment", "next": "wait"},
       "wait":   {"type": "wait_event", "event": "lab.viewed", "timeout_seconds": 86400,
                  "next": "done", "timeout_next": "check"},
       "check":  {"type": "branch", "condition": {"tag": "vip"}, "yes": "done", "no": "done"},
       "done":   {"type": "exit"}}}

Pure functions of the JSON: no database. What needs the database (templates, topics, sender domains)
is checked by the service that saves a version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consent.models import Purpose
from contacts.models import JourneyStage
from healthmail.errors import ApplicationError

KEY = re.compile(r"^[a-z][a-z0-9_]{0,23}$")  # short: a message's source id carries it
EVENT = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
TAG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_STEPS = 100
MIN_WAIT_SECONDS = 60
MAX_WAIT_SECONDS = 400 * 86400
DEFAULT_CYCLE_CAP = 3
MAX_CYCLE_CAP = 20

ENTRY_KINDS = ("event", "manual", "date")
DATE_FIELDS = ("birth_date",)  # plus custom.<key> fields of type date (checked by the service)
WAITS = frozenset({"wait", "wait_event"})
BRANCH_FIELDS = ("state", "language", "gender", "journey_stage")
ENGAGEMENT = ("open", "click")
# Which keys of a step name the step that follows.
EXITS: dict[str, tuple[str, ...]] = {
    "send": ("next",),
    "wait": ("next",),
    "wait_event": ("next", "timeout_next"),
    "branch": ("yes", "no"),
    "update": ("next",),
    "exit": (),
}


class DefinitionInvalid(ApplicationError):
    status_code = 422
    title = "Journey definition invalid"


@dataclass(frozen=True)
class Problem:
    where: str  # "steps.remind.next", "entry"
    message: str


def _check_entry(entry: Any, problems: list[Problem]) -> None:
    if not isinstance(entry, Mapping) or entry.get("kind") not in ENTRY_KINDS:
        problems.append(Problem("entry", "Choose how contacts enter: event, manual or date."))
        return
    if entry["kind"] == "event" and not EVENT.fullmatch(str(entry.get("event", ""))):
        problems.append(
            Problem("entry.event", "Name the event that starts the journey (like lab_result.ready).")
        )
    if entry["kind"] == "date":
        field = str(entry.get("field", ""))
        if field not in DATE_FIELDS and not field.startswith("custom."):
            problems.append(Problem("entry.field", "Choose birth_date or a custom date field."))
        offset = entry.get("offset_days", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or abs(offset) > 400:
            problems.append(
                Problem("entry.offset_days", "The offset is a whole number of days (at most 400).")
            )


def _name(value: Any) -> str:
    """A step's type, a step key: a string, or "" (an API body may hold any JSON there)."""
    return value if isinstance(value, str) else ""


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_condition(key: str, condition: Any, problems: list[Problem]) -> None:
    where = f"steps.{key}.condition"
    if not isinstance(condition, Mapping) or len(condition) not in (1, 2):
        problems.append(Problem(where, "A branch tests one thing: a field, a tag, consent or engagement."))
        return
    if "field" in condition:
        if condition["field"] not in BRANCH_FIELDS or not isinstance(condition.get("equals"), str):
            problems.append(
                Problem(where, f"Fields a branch may test: {', '.join(BRANCH_FIELDS)}, with equals.")
            )
    elif "tag" in condition:
        if not TAG.fullmatch(str(condition["tag"])):
            problems.append(Problem(where, "A tag is a short key (a-z, 0-9, . _ -)."))
    elif "consent" in condition:
        if not isinstance(condition["consent"], str) or not condition["consent"]:
            problems.append(Problem(where, "Name the consent topic to test."))
    elif "engagement" in condition:
        if condition["engagement"] not in ENGAGEMENT:
            problems.append(Problem(where, "Engagement is open or click (of this journey's email)."))
    else:
        problems.append(Problem(where, "A branch tests a field, a tag, consent or engagement."))


def _check_step(key: str, step: Any, problems: list[Problem]) -> None:
    where = f"steps.{key}"
    if not KEY.fullmatch(key):
        problems.append(Problem(where, "Step names are short keys (a-z, 0-9, _; at most 24)."))
    if not isinstance(step, Mapping) or _name(step.get("type")) not in EXITS:
        problems.append(Problem(where, f"A step's type is one of {', '.join(EXITS)}."))
        return
    kind = step["type"]
    if kind == "send":
        if not step.get("template_id"):
            problems.append(Problem(f"{where}.template_id", "Choose the template to send."))
        if step.get("purpose") not in Purpose.values:
            problems.append(
                Problem(f"{where}.purpose", "Choose the purpose (marketing or a transactional one).")
            )
    elif kind == "wait":
        if not _whole(step.get("seconds"), MIN_WAIT_SECONDS, MAX_WAIT_SECONDS):
            problems.append(Problem(f"{where}.seconds", "A wait lasts from a minute to 400 days."))
    elif kind == "wait_event":
        if not EVENT.fullmatch(str(step.get("event", ""))):
            problems.append(Problem(f"{where}.event", "Name the event to wait for."))
        if not _whole(step.get("timeout_seconds"), MIN_WAIT_SECONDS, MAX_WAIT_SECONDS):
            problems.append(
                Problem(f"{where}.timeout_seconds", "The timeout lasts from a minute to 400 days.")
            )
    elif kind == "branch":
        _check_condition(key, step.get("condition"), problems)
    elif kind == "update":
        _check_update(key, step, problems)


def _check_update(key: str, step: Mapping, problems: list[Problem]) -> None:
    changes = [name for name in ("add_tag", "remove_tag", "journey_stage") if name in step]
    if not changes:
        problems.append(Problem(f"steps.{key}", "An update adds or removes a tag or sets the journey stage."))
    for name in ("add_tag", "remove_tag"):
        if name in step and not TAG.fullmatch(str(step[name])):
            problems.append(Problem(f"steps.{key}.{name}", "A tag is a short key (a-z, 0-9, . _ -)."))
    if "journey_stage" in step and step["journey_stage"] not in JourneyStage.values:
        problems.append(Problem(f"steps.{key}.journey_stage", "Choose one of the journey stages."))


def instant_cycle(steps: Mapping[str, Mapping]) -> list[str] | None:
    """A cycle a contact could run round without waiting (the steps in order), or None. Leaving a
    wait takes time, so a wait's exits are not followed."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(key: str, path: list[str]) -> list[str] | None:
        state[key] = 1
        path.append(key)
        step = steps.get(key) or {}
        if step.get("type") not in WAITS:
            for exit_key in EXITS.get(step.get("type", ""), ()):
                target = step.get(exit_key)
                if state.get(target) == 1:
                    return [*path[path.index(target) :], target]
                if target in steps and target not in state:
                    found = visit(target, path)
                    if found:
                        return found
        path.pop()
        state[key] = 2
        return None

    for key in steps:
        if key not in state:
            found = visit(key, [])
            if found:
                return found
    return None


def _reachable(steps: Mapping[str, Mapping], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        key = todo.pop()
        if key in seen or key not in steps:
            continue
        seen.add(key)
        step = steps[key]
        todo.extend(step.get(e) for e in EXITS.get(step.get("type", ""), ()) if isinstance(step.get(e), str))
    return seen


def problems_of(definition: Any) -> list[Problem]:
    """Everything wrong with a definition, in words a marketer can act on."""
    if not isinstance(definition, Mapping):
        return [Problem("", "A journey definition is an object with entry, start and steps.")]
    problems: list[Problem] = []
    _check_entry(definition.get("entry"), problems)
    steps = definition.get("steps")
    if not isinstance(steps, Mapping) or not steps:
        return [*problems, Problem("steps", "Add at least one step.")]
    if len(steps) > MAX_STEPS:
        problems.append(Problem("steps", f"At most {MAX_STEPS} steps."))
    for key, step in steps.items():
        _check_step(str(key), step, problems)
        for exit_key in EXITS.get(_name(step.get("type")) if isinstance(step, Mapping) else "", ()):
            if _name(step.get(exit_key)) not in steps:
                problems.append(Problem(f"steps.{key}.{exit_key}", "Connect this to an existing step."))
    if problems:
        return problems
    if _name(definition.get("start")) not in steps:
        problems.append(Problem("start", "Choose the first step."))
    elif unreachable := sorted(set(steps) - _reachable(steps, definition["start"])):
        problems.append(Problem("steps", f"No path reaches these steps: {', '.join(unreachable)}."))
    cap = definition.get("cycle_cap", DEFAULT_CYCLE_CAP)
    if not _whole(cap, 1, MAX_CYCLE_CAP):
        problems.append(Problem("cycle_cap", f"A contact may pass a step 1 to {MAX_CYCLE_CAP} times."))
    goal = definition.get("goal")
    if goal is not None and not (isinstance(goal, Mapping) and EVENT.fullmatch(str(goal.get("event", "")))):
        problems.append(Problem("goal", "A goal names the event that means the journey succeeded."))
    cycle = instant_cycle(steps)
    if cycle:
        problems.append(
            Problem("steps", f"These steps form a loop without a wait: {' → '.join(cycle)}. Add a wait.")
        )
    return problems


def definition_check(definition: Any) -> dict:
    """The definition, or DefinitionInvalid listing every problem."""
    problems = problems_of(definition)
    if problems:
        raise DefinitionInvalid(
            problems[0].message if len(problems) == 1 else f"{len(problems)} problems in the journey.",
            code="definition_invalid",
            extra={"problems": [{"where": p.where, "message": p.message} for p in problems]},
        )
    return dict(definition)


def step_of(definition: Mapping, key: str) -> Mapping:
    return definition["steps"][key]


def cycle_cap(definition: Mapping) -> int:
    return int(definition.get("cycle_cap", DEFAULT_CYCLE_CAP))


def goal_event(definition: Mapping) -> str:
    return str((definition.get("goal") or {}).get("event", ""))

"""Dry run: the path sample contacts would take through a definition, before anybody enters it.

The sample contacts are synthetic (generated here, never read from the database: no PHI), drawn so
that each branch, each event wait and each consent question goes both ways for some of them. No
email is queued, no contact is changed; the send gate is modelled only by its consent question (a
marketing send needs the topic's opt-in). Pure functions of the definition.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from consent.models import TRANSACTIONAL_PURPOSES

from .. import definition as spec

SAMPLES = 8
MAX_HOPS = 200
_STATES = ("TX", "CA", "NY", "FL", "WA")
_LANGUAGES = ("en", "es", "vi", "zh")
_GENDERS = ("female", "male", "nonbinary", "unknown")


@dataclass
class Sample:
    """A synthetic contact: its profile and what will happen to it (drawn once)."""

    label: str
    fields: dict[str, str]
    tags: set[str]
    consents: set[str]
    events: set[str]  # the events that arrive while it waits
    engaged: set[str]  # "open" / "click", if it got an email
    path: list[tuple[str, str]] = field(default_factory=list)
    outcome: str = ""
    elapsed_seconds: int = 0

    @property
    def profile(self) -> str:
        parts = [f"{name} {value}" for name, value in sorted(self.fields.items())]
        parts += [f"tag {tag}" for tag in sorted(self.tags)]
        parts += [f"opted in to {topic}" for topic in sorted(self.consents)]
        parts += [f"{event} arrives" for event in sorted(self.events)]
        parts += [f"would {kind}" for kind in sorted(self.engaged)]
        return "; ".join(parts) or "no tags, no opt-in, no events"


def _wanted(definition: Mapping) -> tuple[dict, set, set, set]:
    fields: dict[str, str] = {}
    tags, topics, events = set(), set(), set()
    for step in definition.get("steps", {}).values():
        kind = step.get("type")
        if kind == "branch":
            condition = step.get("condition") or {}
            if "field" in condition:
                fields[condition["field"]] = str(condition.get("equals", ""))
            elif "tag" in condition:
                tags.add(str(condition["tag"]))
            elif "consent" in condition:
                topics.add(str(condition["consent"]))
        elif kind == "wait_event":
            events.add(str(step.get("event", "")))
        elif kind == "send" and step.get("purpose") not in TRANSACTIONAL_PURPOSES:
            topics.add(str(step.get("topic", "")))
    return fields, tags, topics, events


def _other(name: str, value: str) -> str:
    choices = {"state": _STATES, "language": _LANGUAGES, "gender": _GENDERS}.get(name, ("prospect", "active"))
    return next(c for c in choices if c != value)


def samples(definition: Mapping, *, count: int = SAMPLES, seed: int = 18) -> list[Sample]:
    """`count` synthetic contacts; the first two differ in everything the definition asks about."""
    fields, tags, topics, events = _wanted(definition)
    rng = random.Random(seed)  # noqa: S311 (synthetic samples, not a secret)
    made = []
    for index in range(count):
        if index < 2:  # the first two: all yes, all no
            pick = (lambda: True) if index == 0 else (lambda: False)
        else:
            pick = lambda: rng.random() < 0.5  # noqa: E731
        made.append(
            Sample(
                label=f"Sample {index + 1}",
                fields={name: value if pick() else _other(name, value) for name, value in fields.items()},
                tags={tag for tag in sorted(tags) if pick()},
                consents={topic for topic in sorted(topics) if pick()},
                events={event for event in sorted(events) if pick()},
                engaged={kind for kind in ("open", "click") if pick()},
            )
        )
    return made


def _meets(sample: Sample, condition: Mapping, emailed: bool) -> bool:
    if "field" in condition:
        return sample.fields.get(condition["field"]) == condition.get("equals")
    if "tag" in condition:
        return condition["tag"] in sample.tags
    if "consent" in condition:
        return condition["consent"] in sample.consents
    if "engagement" in condition:
        return emailed and condition["engagement"] in sample.engaged
    return False


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def window_text(window: Mapping) -> str:
    """A wait's window in words: "mon, tue 09:00-12:00 (contact's time), from 2027-01-04"."""
    days = window.get("days", list(spec.WEEKDAYS))
    when = "every day" if list(days) == list(spec.WEEKDAYS) else ", ".join(days)
    text = f"{when} {window['start']}-{window['end']} (contact's time)"
    return text + (f", from {window['from_date']}" if window.get("from_date") else "")


def walk(definition: Mapping, sample: Sample) -> Sample:
    """Move the sample from the start to its exit, noting each step and what happened there."""
    steps = definition.get("steps", {})
    key, emailed = definition.get("start"), False
    visits: dict[str, int] = {}
    cap = spec.cycle_cap(definition)
    for _ in range(MAX_HOPS):
        if key is None or (step := steps.get(key)) is None:
            sample.outcome = f"stops: no step {key!r}"
            return sample
        visits[key] = visits.get(key, 0) + 1
        if visits[key] > cap:
            sample.outcome = "exits: passed a step too often (cycle cap)"
            return sample
        kind, note, following = step.get("type"), "", None
        if kind == "send":
            marketing = step.get("purpose") not in TRANSACTIONAL_PURPOSES
            if marketing and step.get("topic") not in sample.consents:
                sample.path.append((key, "email refused: no opt-in to the topic"))
                sample.outcome = "exits: the send gate refused"
                return sample
            note, following, emailed = "email queued", step.get("next"), True
        elif kind == "wait" and "window" in step:
            note, following = f"waits until {window_text(step['window'])}", step.get("next")
        elif kind == "wait":
            sample.elapsed_seconds += int(step.get("seconds", 0))
            note, following = f"waits {_duration(int(step.get('seconds', 0)))}", step.get("next")
        elif kind == "wait_event":
            if step.get("event") in sample.events:
                note, following = f"{step.get('event')} arrives", step.get("next")
            else:
                sample.elapsed_seconds += int(step.get("timeout_seconds", 0))
                timeout = _duration(int(step.get("timeout_seconds", 0)))
                note, following = f"no {step.get('event')} within {timeout}", step.get("timeout_next")
        elif kind == "branch":
            met = _meets(sample, step.get("condition") or {}, emailed)
            note, following = ("yes" if met else "no"), step.get("yes" if met else "no")
        elif kind == "update":
            changed = [name for name in ("add_tag", "remove_tag", "journey_stage") if name in step]
            changes = [f"{name} {step[name]}" for name in changed]
            if "set_field" in step:
                changes.append(f"{step['set_field']['field']} {step['set_field']['value']}")
            if "add_tag" in step:
                sample.tags.add(step["add_tag"])
            if "remove_tag" in step:
                sample.tags.discard(step["remove_tag"])
            note, following = "updated: " + ", ".join(changes), step.get("next")
        elif kind == "list":
            tag = f"list.{step['list']}"
            if step["action"] == "add":
                sample.tags.add(tag)
                note = f"added to the list {step['list']}"
            else:
                sample.tags.discard(tag)
                note = f"removed from the list {step['list']}"
            following = step.get("next")
        elif kind == "webhook":
            note, following = "webhook called (ids only)", step.get("next")
        elif kind == "notify":
            note, following = f"staff notified ({step['role']})", step.get("next")
        elif kind == "split":
            index = spec.split_path(sample.label, key, step["variants"])
            note, following = f"path {index + 1} of the split", step["variants"][index]["next"]
        elif kind == "jump" and "to" in step:
            note, following = f"jumps to {step['to']}", step["to"]
        elif kind == "jump":
            sample.path.append((key, "jumps to another journey"))
            sample.outcome = "leaves for another journey"
            return sample
        else:  # exit: definition_check knows no other kind
            sample.path.append((key, "exit"))
            sample.outcome = "completes the journey"
            return sample
        sample.path.append((key, note))
        key = following
    sample.outcome = f"still moving after {MAX_HOPS} steps"
    return sample


def dry_run(definition: Mapping, *, count: int = SAMPLES, seed: int = 18) -> list[Sample]:
    """The sample contacts' paths; the definition must be valid (journeys/definition.py)."""
    spec.definition_check(definition)
    return [walk(definition, sample) for sample in samples(definition, count=count, seed=seed)]

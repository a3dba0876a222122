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

import datetime
import hashlib
import re
import uuid
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

ENTRY_KINDS = ("event", "manual", "date", "consent", "engagement", "segment", "form")
ENGAGEMENT_ACTIONS = ("opened", "clicked", "not_opened")  # wait_event "email.opened" / "email.clicked" too
# "not_opened": no human open or click of a chosen send (a campaign, or one send step of a journey)
# within `days` of its delivery (journeys/services/unopened.py).
NOT_OPENED = "not_opened"
MIN_NOT_OPENED_DAYS, MAX_NOT_OPENED_DAYS = 1, 90
CONSENT_CHANGES = ("granted", "revoked")
REENTRY = ("after_exit", "never")  # or {"after_days": n}
UPDATE_FIELDS = ("journey_stage", "language")  # plaintext fields a journey may set
SPLIT_METRICS = ("open", "click", "goal")
MAX_VARIANTS = 5
NOTIFY_ROLES = ("tenant_admin", "marketer", "compliance_officer", "clinical_reviewer")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
DATE_FIELDS = ("birth_date",)  # plus custom.<key> fields of type date (checked by the service)
DATE_FIELD_LABELS = {"birth_date": "Date of birth"}
WAITS = frozenset({"wait", "wait_event"})
# A wait until a date/time window (`{"type": "wait", "window": {...}}`): the weekdays it opens on.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BRANCH_FIELDS = ("state", "language", "gender", "journey_stage")
ENGAGEMENT = ("open", "click")
# Which keys of a step name the step that follows (a split names them in its variants; a jump to
# another journey names none).
EXITS: dict[str, tuple[str, ...]] = {
    "send": ("next",),
    "wait": ("next",),
    "wait_event": ("next", "timeout_next"),
    "branch": ("yes", "no"),
    "update": ("next",),
    "list": ("next",),
    "webhook": ("next",),
    "notify": ("next",),
    "split": (),
    "jump": ("to",),
    "exit": (),
}


# What people read for each step type and setting (the builder's toolbar, panel and step list).
STEP_LABELS = {
    "send": "Send email",
    "wait": "Wait",
    "wait_event": "Wait for an event",
    "branch": "Branch on a condition",
    "update": "Update field or tag",
    "list": "Add to or remove from a list",
    "webhook": "Call a webhook",
    "notify": "Notify staff",
    "split": "A/B split",
    "jump": "Jump",
    "exit": "Exit",
}
NOTIFY_ROLE_LABELS = {
    "tenant_admin": "Organization admins",
    "marketer": "Marketers",
    "compliance_officer": "Compliance officers",
    "clinical_reviewer": "Clinical reviewers",
}
METRIC_LABELS = {"open": "Opens", "click": "Clicks", "goal": "Goal reached"}
# How contacts enter, as pages show it (registered as the label kinds "journey_entry",
# "journey_engagement" and "journey_consent_change").
ENTRY_LABELS = {
    "event": "An event from your systems",
    "manual": "Enrolled by hand or through the API",
    "date": "A date of the contact",
    "consent": "A consent change",
    "engagement": "An email opened, clicked or left unopened",
    "segment": "Joining a segment",
    "form": "A form submitted",
}
ENGAGEMENT_LABELS = {
    "opened": "Opens an email",
    "clicked": "Clicks a link in an email",
    "not_opened": "Does not open an email within some days",
}
CONSENT_CHANGE_LABELS = {"granted": "Consent granted", "revoked": "Consent revoked"}


def exit_keys(step: Any) -> tuple[str, ...]:
    """The keys of `step` that name a following step."""
    if not isinstance(step, Mapping):
        return ()
    if step.get("type") == "jump" and "to" not in step:
        return ()  # a jump to another journey
    return EXITS.get(_name(step.get("type")), ())


def targets(step: Any) -> list:
    """Every step `step` can lead to (values as written, checked or not)."""
    found = [step.get(key) for key in exit_keys(step)]
    if isinstance(step, Mapping) and step.get("type") == "split" and isinstance(step.get("variants"), list):
        found += [v.get("next") for v in step["variants"] if isinstance(v, Mapping)]
    return found


class DefinitionInvalid(ApplicationError):
    status_code = 422
    title = "Journey definition invalid"


@dataclass(frozen=True)
class Problem:
    where: str  # "steps.remind.next", "entry"
    message: str


def _check_entry(entry: Any, problems: list[Problem]) -> None:
    if not isinstance(entry, Mapping) or entry.get("kind") not in ENTRY_KINDS:
        problems.append(
            Problem(
                "entry",
                "Choose how contacts enter: event, manual, date, consent, engagement, segment or form.",
            )
        )
        return
    if entry["kind"] == "event" and not EVENT.fullmatch(str(entry.get("event", ""))):
        problems.append(
            Problem("entry.event", "Name the event that starts the journey (like lab_result.ready).")
        )
    if entry["kind"] == "engagement" and entry.get("action") not in ENGAGEMENT_ACTIONS:
        problems.append(
            Problem(
                "entry.action",
                "Choose the engagement that starts the journey: opens an email, clicks a link in one, "
                "or does not open one within some days.",
            )
        )
    if entry["kind"] == "engagement" and entry.get("action") == NOT_OPENED:
        _check_not_opened(entry, problems)
    if entry["kind"] == "consent":
        if not isinstance(entry.get("topic"), str) or not TAG.fullmatch(entry["topic"]):
            problems.append(
                Problem("entry.topic", "Choose the consent topic whose change starts the journey.")
            )
        if entry.get("change") not in CONSENT_CHANGES:
            problems.append(
                Problem(
                    "entry.change", "Choose whether consent granted or consent revoked starts the journey."
                )
            )
    if entry["kind"] == "form" and not TAG.fullmatch(_name(entry.get("form"))):
        problems.append(
            Problem(
                "entry.form",
                "Name the form whose submission starts the journey: its key, as your systems report it "
                "(like intake-form).",
            )
        )
    if entry["kind"] == "segment" and not _is_uuid(entry.get("segment_id")):
        problems.append(Problem("entry.segment_id", "Choose the segment whose new members enter."))
    if entry["kind"] == "date":
        field = str(entry.get("field", ""))
        if field not in DATE_FIELDS and not field.startswith("custom."):
            problems.append(Problem("entry.field", "Choose birth_date or a custom date field."))
        offset = entry.get("offset_days", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or abs(offset) > 400:
            problems.append(
                Problem("entry.offset_days", "The offset is a whole number of days (at most 400).")
            )


def _check_not_opened(entry: Mapping, problems: list[Problem]) -> None:
    """Which send (a campaign, or a send step of a journey: exactly one) and how many days."""
    if not _whole(entry.get("days"), MIN_NOT_OPENED_DAYS, MAX_NOT_OPENED_DAYS):
        problems.append(
            Problem(
                "entry.days",
                f"The days without an open are a whole number from {MIN_NOT_OPENED_DAYS} "
                f"to {MAX_NOT_OPENED_DAYS}.",
            )
        )
    campaign, journey = "campaign_id" in entry, "journey_id" in entry
    if campaign == journey:
        problems.append(
            Problem("entry.send", "Choose the email not opened: a campaign or a send step of a journey.")
        )
    elif campaign and not _is_uuid(entry["campaign_id"]):
        problems.append(Problem("entry.send", "Choose the campaign whose email was not opened."))
    elif journey and (not _is_uuid(entry["journey_id"]) or not KEY.fullmatch(_name(entry.get("step")))):
        problems.append(
            Problem("entry.send", "Choose the journey and its send step whose email was not opened.")
        )


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


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
    elif kind == "wait" and "window" in step:
        _check_window(f"{where}.window", step, problems)
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
    elif kind == "list":
        if not TAG.fullmatch(str(step.get("list", ""))):
            problems.append(Problem(f"{where}.list", "Name the list (a short key: a-z, 0-9, . _ -)."))
        if step.get("action") not in ("add", "remove"):
            problems.append(Problem(f"{where}.action", "A list step adds to or removes from the list."))
    elif kind == "webhook":
        if not isinstance(step.get("endpoint_id"), str) or not step["endpoint_id"]:
            problems.append(Problem(f"{where}.endpoint_id", "Choose the webhook endpoint to call."))
    elif kind == "notify":
        if step.get("role") not in NOTIFY_ROLES:
            problems.append(Problem(f"{where}.role", "Choose the staff role to notify."))
        subject = step.get("subject")
        if not isinstance(subject, str) or not 1 <= len(subject.strip()) <= 120:
            problems.append(Problem(f"{where}.subject", "Write a short subject (1 to 120 characters)."))
    elif kind == "jump":
        if ("to" in step) == ("journey_id" in step):
            problems.append(Problem(where, "A jump goes to a step of this journey or to another journey."))
    elif kind == "split":
        _check_split(key, step, problems)


def _check_window(where: str, step: Mapping, problems: list[Problem]) -> None:
    """A wait until a date/time window: from `start` to `end` (HH:MM, the contact's local time) on
    the listed weekdays, not before `from_date` if given."""
    if "seconds" in step:
        problems.append(Problem(where, "A wait lasts a time or waits for a window, not both."))
    window = step["window"]
    if not isinstance(window, Mapping):
        problems.append(Problem(where, "A window has a start and an end time (HH:MM)."))
        return
    start, end = str(window.get("start", "")), str(window.get("end", ""))
    if not (HHMM.fullmatch(start) and HHMM.fullmatch(end) and start < end):
        problems.append(
            Problem(
                f"{where}.start", "A window runs from a start to a later end time, as HH:MM (09:00 to 12:00)."
            )
        )
    days = window.get("days", list(WEEKDAYS))
    if not isinstance(days, list) or not days or any(day not in WEEKDAYS for day in days):
        problems.append(Problem(f"{where}.days", "Choose the weekdays of the window (mon to sun)."))
    if "from_date" in window:
        try:
            datetime.date.fromisoformat(str(window["from_date"]))
        except ValueError:
            problems.append(Problem(f"{where}.from_date", "The first day is a date, as YYYY-MM-DD."))
    unknown = set(window) - {"start", "end", "days", "from_date"}
    if unknown:
        problems.append(Problem(where, f"A window has no setting {', '.join(sorted(unknown))}."))


def _check_split(key: str, step: Mapping, problems: list[Problem]) -> None:
    variants = step.get("variants")
    if not isinstance(variants, list) or not 2 <= len(variants) <= MAX_VARIANTS:
        problems.append(Problem(f"steps.{key}.variants", f"A split has 2 to {MAX_VARIANTS} paths."))
        return
    for index, variant in enumerate(variants):
        if not isinstance(variant, Mapping) or not _whole(variant.get("weight"), 1, 100):
            problems.append(
                Problem(f"steps.{key}.variants.{index}.weight", "Each path's weight is 1 to 100.")
            )
    if step.get("metric") not in SPLIT_METRICS:
        problems.append(Problem(f"steps.{key}.metric", "The winner is chosen by opens, clicks or the goal."))


def _check_update(key: str, step: Mapping, problems: list[Problem]) -> None:
    changes = [name for name in ("add_tag", "remove_tag", "journey_stage", "set_field") if name in step]
    if not changes:
        problems.append(Problem(f"steps.{key}", "An update adds or removes a tag or sets a field."))
    if "set_field" in step:
        change = step["set_field"]
        if (
            not isinstance(change, Mapping)
            or change.get("field") not in UPDATE_FIELDS
            or not isinstance(change.get("value"), str)
        ):
            problems.append(
                Problem(
                    f"steps.{key}.set_field", "An update may set the preferred language or the journey stage."
                )
            )
        elif change["field"] == "journey_stage" and change["value"] not in JourneyStage.values:
            problems.append(Problem(f"steps.{key}.set_field", "Choose one of the journey stages."))
        elif change["field"] == "language" and not re.fullmatch(r"[a-z]{2}(-[A-Za-z]{2})?", change["value"]):
            problems.append(Problem(f"steps.{key}.set_field", "A language is a code like en or es-US."))
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
            for target in targets(step):
                if not isinstance(target, str):
                    continue
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
        todo.extend(t for t in targets(step) if isinstance(t, str))
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
        for exit_key in exit_keys(step):
            if _name(step.get(exit_key)) not in steps:
                problems.append(Problem(f"steps.{key}.{exit_key}", "Connect this to an existing step."))
        if isinstance(step, Mapping) and step.get("type") == "split":
            for index, target in enumerate(targets(step)):
                if target not in steps:
                    problems.append(
                        Problem(f"steps.{key}.variants.{index}.next", "Connect this to an existing step.")
                    )
    if problems:
        return problems
    if _name(definition.get("start")) not in steps:
        problems.append(Problem("start", "Choose the first step."))
    elif unreachable := sorted(set(steps) - _reachable(steps, definition["start"])):
        problems.append(Problem("steps", f"No path reaches these steps: {', '.join(unreachable)}."))
    cap = definition.get("cycle_cap", DEFAULT_CYCLE_CAP)
    if not _whole(cap, 1, MAX_CYCLE_CAP):
        problems.append(Problem("cycle_cap", f"A contact may pass a step 1 to {MAX_CYCLE_CAP} times."))
    _check_goal(definition.get("goal"), problems)
    _check_rules(definition, problems)
    cycle = instant_cycle(steps)
    if cycle:
        problems.append(
            Problem("steps", f"These steps form a loop without a wait: {' → '.join(cycle)}. Add a wait.")
        )
    return problems


def _check_goal(goal: Any, problems: list[Problem]) -> None:
    if goal is None:
        return
    valid = (
        isinstance(goal, Mapping)
        and len(goal) == 1
        and (
            ("event" in goal and EVENT.fullmatch(str(goal["event"])))
            or ("tag" in goal and TAG.fullmatch(str(goal["tag"])))
        )
    )
    if not valid:
        problems.append(
            Problem("goal", "A goal is an event (like appointment.kept) or a tag the contact gets.")
        )


def _check_rules(definition: Mapping, problems: list[Problem]) -> None:
    """Re-entry, quiet hours and the frequency cap (journey-wide)."""
    reentry = definition.get("reentry", "after_exit")
    if reentry not in REENTRY and not (
        isinstance(reentry, Mapping)
        and set(reentry) == {"after_days"}
        and _whole(reentry["after_days"], 1, 3650)
    ):
        problems.append(Problem("reentry", "Re-entry is after_exit, never, or {after_days: 1 to 3650}."))
    quiet = definition.get("quiet_hours")
    if quiet is not None and not (
        isinstance(quiet, Mapping)
        and HHMM.fullmatch(str(quiet.get("start", "")))
        and HHMM.fullmatch(str(quiet.get("end", "")))
        and quiet["start"] != quiet["end"]
    ):
        problems.append(
            Problem("quiet_hours", "Quiet hours run from start to end, as HH:MM (like 21:00 to 08:00).")
        )
    cap = definition.get("frequency_cap")
    if cap is not None and not (
        isinstance(cap, Mapping) and _whole(cap.get("count"), 1, 100) and _whole(cap.get("days"), 1, 365)
    ):
        problems.append(
            Problem("frequency_cap", "A frequency cap is at most count (1-100) emails in days (1-365).")
        )


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


def entry_key(entry: Mapping) -> str:
    """The indexed copy of an entry trigger (Journey.entry_event): the event's name, the form's key,
    or for a consent change "<granted|revoked>:<topic key>"."""
    if entry.get("kind") == "consent":
        return f"{entry['change']}:{entry['topic']}"[:64]
    if entry.get("kind") == "engagement":
        return f"email.{entry['action']}"
    if entry.get("kind") == "segment":
        return str(entry["segment_id"])
    if entry.get("kind") == "form":
        return str(entry["form"])
    return str(entry.get("event", ""))


def goal_tag(definition: Mapping) -> str:
    return str((definition.get("goal") or {}).get("tag", ""))


def reentry_rule(definition: Mapping) -> tuple[str, int]:
    """("after_exit", 0), ("never", 0) or ("after_days", n)."""
    rule = definition.get("reentry", "after_exit")
    if isinstance(rule, Mapping):
        return "after_days", int(rule["after_days"])
    return str(rule), 0


def split_path(position_id, key: str, variants: list) -> int:
    """The variant a contact takes at a split: drawn from its position id and the step (a contact
    retried after a crash takes the same path), in proportion to the weights."""
    digest = hashlib.sha256(f"{position_id}:{key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(int(v["weight"]) for v in variants)
    for index, variant in enumerate(variants):
        point -= int(variant["weight"])
        if point < 0:
            return index
    return len(variants) - 1

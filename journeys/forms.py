"""The journey builder's form: the entry trigger, goal and sender as ordinary fields, the steps as the
definition's JSON (written by the canvas, or by hand without JavaScript), the canvas layout hidden."""

from __future__ import annotations

import json

from django import forms

from campaigns.models import Campaign
from consent.services import topics_ensure_system
from delivery.models import SenderDomain
from segmentation.models import Segment

from . import definition as spec
from .models import Journey

ENTRY_CHOICES = [
    ("event", "An event from your systems (API)"),
    ("manual", "Enrolled by hand or through the API"),
    ("date", "A date of the contact, relative to today"),
    ("segment", "They join a segment (a change of their data puts them in it)"),
    ("consent", "Their consent to a topic changes (granted or revoked)"),
    ("engagement", "They open or click an email, or leave a chosen email unopened for some days"),
    ("form", "They submit a form (reported by your systems through the API)"),
]
CHANGE_CHOICES = [("", "— choose —"), *spec.CONSENT_CHANGE_LABELS.items()]
ACTION_CHOICES = [("", "— choose —"), *spec.ENGAGEMENT_LABELS.items()]


def _json_object(value: str, what: str) -> dict:
    try:
        parsed = json.loads(value or "{}")
    except json.JSONDecodeError as error:
        raise forms.ValidationError(
            f"The {what} are not valid JSON: {error.msg} (line {error.lineno})."
        ) from None
    if not isinstance(parsed, dict):
        raise forms.ValidationError(f"The {what} are a JSON object keyed by step name.")
    return parsed


class JourneyForm(forms.Form):
    name = forms.CharField(max_length=120)
    entry_kind = forms.ChoiceField(label="Contacts enter when", choices=ENTRY_CHOICES)
    entry_event = forms.CharField(
        label="Entry event",
        required=False,
        max_length=64,
        help_text="For an event entry, like appointment.booked.",
    )
    entry_field = forms.CharField(
        label="Date field",
        required=False,
        max_length=80,
        help_text="For a date entry: birth_date or custom.<key> (a date field).",
    )
    entry_offset_days = forms.IntegerField(
        label="Days after the date", required=False, min_value=-400, max_value=400
    )
    entry_anniversary = forms.BooleanField(label="Every year (match month and day)", required=False)
    entry_segment = forms.ChoiceField(
        label="Segment",
        required=False,
        help_text="For a segment entry: contacts enter when a change makes them members (those already "
        "members when the journey is activated do not).",
    )
    entry_topic = forms.ChoiceField(
        label="Entry consent topic",
        required=False,
        help_text="For a consent entry: the topic whose change starts the journey.",
    )
    entry_change = forms.ChoiceField(
        label="Entry consent change", required=False, choices=CHANGE_CHOICES, help_text="For a consent entry."
    )
    entry_action = forms.ChoiceField(
        label="Entry engagement",
        required=False,
        choices=ACTION_CHOICES,
        help_text="For an engagement entry: a human open (the first of a message) or click of any "
        "campaign or journey email, or no human open or click of the chosen email within the days "
        "below. Bot opens and privacy prefetches (Apple Mail Privacy Protection) never count as opens.",
    )
    entry_send = forms.ChoiceField(
        label="Email not opened",
        required=False,
        help_text='For "does not open an email within some days": the campaign, or the send step of a '
        "journey, whose email the contact left unopened.",
    )
    entry_days = forms.IntegerField(
        label="Days without an open",
        required=False,
        min_value=spec.MIN_NOT_OPENED_DAYS,
        max_value=spec.MAX_NOT_OPENED_DAYS,
        help_text=f"Counted from the email's delivery ({spec.MIN_NOT_OPENED_DAYS} to "
        f"{spec.MAX_NOT_OPENED_DAYS}).",
    )
    entry_form = forms.CharField(
        label="Entry form",
        required=False,
        max_length=64,
        help_text="For a form entry: the form's key as your systems report it to /api/v1/events "
        "(kind form_submission, label), like intake-form.",
    )
    start = forms.CharField(label="First step", required=False, max_length=24)
    goal_event = forms.CharField(
        label="Goal event",
        required=False,
        max_length=64,
        help_text="Optional: the event that means the journey succeeded for a contact (it leaves as "
        "converted).",
    )
    goal_tag = forms.CharField(
        label="Goal tag",
        required=False,
        max_length=64,
        help_text="Or: a contact who gets this tag has reached the goal (checked when it next moves).",
    )
    cycle_cap = forms.IntegerField(
        label="Times a contact may pass the same step",
        min_value=1,
        max_value=spec.MAX_CYCLE_CAP,
        initial=spec.DEFAULT_CYCLE_CAP,
    )
    sender_domain = forms.ChoiceField(label="Sender domain", required=False)
    sender_name = forms.CharField(label="Sender name", required=False, max_length=120)
    steps = forms.CharField(
        label="Steps (JSON)",
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code"}),
        help_text="The canvas writes this. Without JavaScript, edit the steps here; docs/journeys.md lists "
        "the step types and their fields.",
    )
    layout = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, tenant=None, **kwargs):
        super().__init__(*args, **kwargs)
        domains = SenderDomain.objects.filter(tenant=tenant, status=SenderDomain.Status.VERIFIED)
        domains = domains.order_by("domain")
        self.fields["sender_domain"].choices = [("", "— none (a journey without email) —")] + [
            (str(d.pk), d.domain) for d in domains
        ]
        segments = Segment.objects.filter(tenant=tenant).order_by("name")
        self.fields["entry_segment"].choices = [("", "— choose —")] + [(str(s.pk), s.name) for s in segments]
        topics = sorted(topics_ensure_system(tenant=tenant).values(), key=lambda t: t.name)
        self.fields["entry_topic"].choices = [("", "— choose —")] + [(t.key, t.name) for t in topics]
        self.fields["entry_send"].choices = send_choices(tenant)

    def clean_steps(self) -> dict:
        return _json_object(self.cleaned_data["steps"], "steps")

    def clean_layout(self) -> dict:
        """Where each step sits on the canvas; anything malformed is dropped (it is only a drawing)."""
        try:
            parsed = json.loads(self.cleaned_data.get("layout") or "{}")
        except json.JSONDecodeError:
            return {}
        if not isinstance(parsed, dict):
            return {}
        return {
            str(key): [int(xy[0]), int(xy[1])]
            for key, xy in parsed.items()
            if isinstance(xy, list) and len(xy) == 2 and all(isinstance(v, int | float) for v in xy)
        }

    def definition(self) -> dict:
        """The definition the services validate (journeys/definition.py)."""
        data = self.cleaned_data
        entry: dict = {"kind": data["entry_kind"]}
        if entry["kind"] == "event":
            entry["event"] = data["entry_event"].strip()
        elif entry["kind"] == "date":
            entry["field"] = data["entry_field"].strip()
            entry["offset_days"] = data["entry_offset_days"] or 0
            entry["anniversary"] = data["entry_anniversary"]
        elif entry["kind"] == "segment":
            entry["segment_id"] = data["entry_segment"]
        elif entry["kind"] == "consent":
            entry["topic"] = data["entry_topic"]
            entry["change"] = data["entry_change"]
        elif entry["kind"] == "form":
            entry["form"] = data["entry_form"].strip()
        elif entry["kind"] == "engagement":
            entry["action"] = data["entry_action"]
            if entry["action"] == spec.NOT_OPENED:
                entry.update(_send_of(data["entry_send"]), days=data["entry_days"])
        result: dict = {
            "entry": entry,
            "start": data["start"].strip(),
            "cycle_cap": data["cycle_cap"],
            "steps": data["steps"],
        }
        if data["goal_event"].strip():
            result["goal"] = {"event": data["goal_event"].strip()}
        elif data["goal_tag"].strip():
            result["goal"] = {"tag": data["goal_tag"].strip()}
        if data["sender_domain"]:
            result["sender_domain_id"] = data["sender_domain"]
        if data["sender_name"].strip():
            result["sender_name"] = data["sender_name"].strip()
        if data["layout"]:
            result["layout"] = {k: v for k, v in data["layout"].items() if k in data["steps"]}
        return result


def initial_of(name: str, definition: dict) -> dict:
    """The form's initial values from a saved (or template) definition."""
    entry = definition.get("entry") or {}
    return {
        "name": name,
        "entry_kind": entry.get("kind", "event"),
        "entry_event": entry.get("event", ""),
        "entry_field": entry.get("field", ""),
        "entry_offset_days": entry.get("offset_days", 0),
        "entry_anniversary": entry.get("anniversary", False),
        "start": definition.get("start", ""),
        "entry_segment": entry.get("segment_id", ""),
        "entry_topic": entry.get("topic", ""),
        "entry_change": entry.get("change", ""),
        "entry_action": entry.get("action", ""),
        "entry_send": _send_value(entry),
        "entry_days": entry.get("days"),
        "entry_form": entry.get("form", ""),
        "goal_event": (definition.get("goal") or {}).get("event", ""),
        "goal_tag": (definition.get("goal") or {}).get("tag", ""),
        "cycle_cap": definition.get("cycle_cap", spec.DEFAULT_CYCLE_CAP),
        "sender_domain": definition.get("sender_domain_id", ""),
        "sender_name": definition.get("sender_name", ""),
        "steps": json.dumps(_editable_steps(definition.get("steps") or {}), indent=2),
        "layout": json.dumps(definition.get("layout") or {}),
    }


def send_choices(tenant) -> list:
    """The emails a "did not open" trigger can watch, by name: campaigns (not cancelled) and the send
    steps of journeys (their newest version; archived journeys left out)."""
    campaigns = Campaign.objects.filter(tenant=tenant).exclude(status=Campaign.Status.CANCELLED)
    journey_sends = []
    for journey in (
        Journey.objects.filter(tenant=tenant).exclude(status=Journey.Status.ARCHIVED).order_by("name")
    ):
        newest = journey.versions.order_by("-number").values_list("definition", flat=True).first() or {}
        for key, step in (newest.get("steps") or {}).items():
            if step.get("type") == "send":
                journey_sends.append((f"journey:{journey.pk}:{key}", f"{journey.name}: step {key}"))
    return [
        ("", "— choose —"),
        ("Campaigns", [(f"campaign:{c.pk}", c.name) for c in campaigns.order_by("name")]),
        ("Journey emails", journey_sends),
    ]


def _send_of(value: str) -> dict:
    """ "campaign:<id>" or "journey:<id>:<step>" → the entry's keys naming the watched send."""
    kind, _, rest = (value or "").partition(":")
    if kind == "campaign":
        return {"campaign_id": rest}
    if kind == "journey":
        journey_id, _, step = rest.partition(":")
        return {"journey_id": journey_id, "step": step}
    return {}


def _send_value(entry: dict) -> str:
    if "campaign_id" in entry:
        return f"campaign:{entry['campaign_id']}"
    if "journey_id" in entry:
        return f"journey:{entry['journey_id']}:{entry.get('step', '')}"
    return ""


def _editable_steps(steps: dict) -> dict:
    """What the marketer edits: the frozen template versions are the service's, not the form's."""
    return {key: {k: v for k, v in step.items() if k != "template_version_id"} for key, step in steps.items()}


# Where a problem is shown: a field of the form, or a step (the rest goes above the form).
ENTRY_FIELDS = {
    "entry": "entry_kind",
    "entry.event": "entry_event",
    "entry.field": "entry_field",
    "entry.offset_days": "entry_offset_days",
    "entry.segment_id": "entry_segment",
    "entry.topic": "entry_topic",
    "entry.change": "entry_change",
    "entry.action": "entry_action",
    "entry.send": "entry_send",
    "entry.days": "entry_days",
    "entry.form": "entry_form",
    "start": "start",
    "goal": "goal_event",
    "cycle_cap": "cycle_cap",
    "sender_domain_id": "sender_domain",
    "name": "name",
}


# The panel's label of each step setting, so a problem names what the marketer sees on the canvas.
SETTING_LABELS = {
    "template_id": "Email template",
    "purpose": "Purpose",
    "topic": "Consent topic",
    "seconds": "Wait for",
    "window": "Window",
    "event": "Event",
    "timeout_seconds": "Wait at most",
    "condition": "Condition",
    "list": "List",
    "action": "List action",
    "endpoint_id": "Webhook endpoint",
    "role": "Staff role to notify",
    "subject": "Subject",
    "journey_id": "Journey",
    "to": "Jump to step",
    "metric": "Winner metric",
    "variants": "Paths",
    "set_field": "Set preferred language",
    "next": "Next step",
    "yes": "If yes",
    "no": "If no",
    "timeout_next": "If it does not arrive",
}

WINDOW_LABELS = {
    "start": "Window opens at",
    "end": "Window closes at",
    "days": "Window days",
    "from_date": "Not before",
}


def setting_label(detail: str) -> str:
    """ "variants.1.weight" → "Path 2 weight"; "template_id" → "Email template"."""
    parts = detail.split(".")
    if parts[0] == "window" and len(parts) == 2:
        return WINDOW_LABELS.get(parts[1], "Window")
    if parts[0] == "variants" and len(parts) == 3 and parts[1].isdigit():
        return f"Path {int(parts[1]) + 1} " + ("weight" if parts[2] == "weight" else "goes to")
    return SETTING_LABELS.get(parts[0], parts[0].replace("_", " ").capitalize())


def place_problems(form: JourneyForm, problems: list[dict]) -> dict[str, list[str]]:
    """Put each problem next to what it is about: a form field, else a step ({step: [messages]})."""
    by_step: dict[str, list[str]] = {}
    for problem in problems:
        where, message = problem.get("where", ""), problem.get("message", "")
        if where in ENTRY_FIELDS:
            form.add_error(ENTRY_FIELDS[where], message)
        elif where.startswith("steps.") and where.count(".") >= 1:
            key = where.split(".")[1]
            detail = setting_label(where.split(".", 2)[2]) if where.count(".") >= 2 else ""
            by_step.setdefault(key, []).append(f"{detail}: {message}" if detail else message)
        elif where == "steps":
            form.add_error("steps", message)
        else:
            form.add_error(None, message)
    return by_step

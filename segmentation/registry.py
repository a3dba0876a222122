"""The field registry: everything a segment may target. Adding a field is one entry in FIELDS.

Each field declares its value type (how the validator checks and normalizes values), its operators,
its compile strategy (segmentation/strategies.py) and whether using it is a use of PHI. Token kinds
come from contacts.normalize, so what is stored and what is matched never drift apart.

Engagement (opens, clicks, conversions; bots excluded) comes from delivery's EngagementEvent table
through the `Engagement` strategy: any/none within N days, or at least K times within N days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contacts import normalize
from contacts.models import JourneyStage, SensitiveCategory
from contacts.reference import US_STATES

from . import strategies as s


class ValueType:
    INTEGER = "integer"  # ages, 0..130
    DAYS = "days"  # 1..3650
    TEXT = "text"  # free text matched exactly (normalized the way the token kind normalizes)
    CHOICE = "choice"  # one of Field.choices
    BOOLEAN = "boolean"
    TOPIC = "topic"  # a consent topic key of the tenant
    SEGMENT = "segment"  # a saved segment id of the tenant


EQUALITY = ("eq", "neq", "in", "not_in")
NUMERIC = ("eq", "neq", "lt", "lte", "gt", "gte", "between")
TOKENS = ("in", "not_in", "all")
RECENCY = ("within_days", "not_within_days")
ENGAGEMENT = (*RECENCY, "count_at_least")
PAIR_OPERATORS = frozenset({"count_at_least"})  # value [times, days]
MAX_TIMES = 1000

OPERATOR_LABELS = {
    "eq": "is",
    "neq": "is not",
    "in": "is any of",
    "not_in": "is none of",
    "all": "has all of",
    "lt": "is less than",
    "lte": "is at most",
    "gt": "is more than",
    "gte": "is at least",
    "between": "is between",
    "within_days": "within the last (days)",
    "count_at_least": "at least (times) within the last (days)",
    "not_within_days": "not within the last (days)",
    "granted": "has opted in to",
    "not_granted": "has not opted in to",
    "in_segment": "is a member of",
    "not_in_segment": "is not a member of",
}
LIST_OPERATORS = frozenset({"in", "not_in", "all"})

# US Census Bureau regions (Census Regions and Divisions of the United States); territories apart.
REGIONS: dict[str, tuple[str, ...]] = {
    "northeast": ("CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA"),
    "midwest": ("IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"),
    "south": (
        *("DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV"),
        *("AL", "KY", "MS", "TN", "AR", "LA", "OK", "TX"),
    ),
    "west": ("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"),
    "territories": ("AS", "GU", "MP", "PR", "VI"),
}


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    group: str
    type: str
    operators: tuple[str, ...]
    strategy: s.Strategy
    is_phi: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""
    # How a TEXT value is normalized before matching (lower for columns stored lower-cased).
    lower: bool = False
    upper: bool = False
    max_length: int = 100
    pattern: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def choice_values(self) -> frozenset[str]:
        return frozenset(value for value, _ in self.choices)


def _token_field(name: str, label: str, input_key: str, *, is_phi: bool, group: str, help: str = "") -> Field:
    column = "clinical_tokens" if is_phi else "demographic_tokens"
    kind = normalize.CLINICAL_TOKEN_KINDS[input_key] if is_phi else input_key
    return Field(
        name, label, group, ValueType.TEXT, TOKENS, s.TokenArray(column, kind), is_phi=is_phi, help=help
    )


DEMOGRAPHIC = "Demographics"
LOCATION = "Location"
CLINICAL = "Clinical (PHI)"
JOURNEY = "Journey and lists"
CONSENT = "Consent"
BEHAVIOUR = "Behaviour"

_FIELDS: list[Field] = [
    Field(
        "age",
        "Age",
        DEMOGRAPHIC,
        ValueType.INTEGER,
        NUMERIC,
        s.Age(),
        help="From birth year; 90+ is one group",
    ),
    Field("gender", "Gender", DEMOGRAPHIC, ValueType.TEXT, EQUALITY, s.Column("gender"), lower=True),
    Field(
        "language",
        "Preferred language",
        DEMOGRAPHIC,
        ValueType.TEXT,
        EQUALITY,
        s.Column("language"),
        lower=True,
        max_length=16,
        help="Language code, e.g. en, es",
    ),
    Field(
        "is_minor",
        "Is a minor",
        DEMOGRAPHIC,
        ValueType.BOOLEAN,
        ("eq",),
        s.Column("is_minor"),
    ),
    *(
        _token_field(key, key.replace("_", " ").capitalize(), key, is_phi=False, group=DEMOGRAPHIC)
        for key in normalize.DEMOGRAPHIC_FIELDS
        if key not in ("gender", "preferred_language")  # plaintext columns above
    ),
    Field(
        "state",
        "State",
        LOCATION,
        ValueType.CHOICE,
        EQUALITY,
        s.Column("state"),
        choices=tuple((code, code) for code in sorted(US_STATES)),
    ),
    Field(
        "zip3",
        "ZIP code (first 3 digits)",
        LOCATION,
        ValueType.TEXT,
        EQUALITY,
        s.Column("zip3"),
        max_length=3,
        pattern=r"\d{3}",
    ),
    Field(
        "region",
        "Region",
        LOCATION,
        ValueType.CHOICE,
        EQUALITY,
        s.StateGroup(REGIONS),
        choices=tuple((name, name.capitalize()) for name in REGIONS),
    ),
    Field(
        "condition",
        "Condition (ICD-10)",
        CLINICAL,
        ValueType.TEXT,
        TOKENS,
        s.ConditionCodes("clinical_tokens", normalize.CLINICAL_TOKEN_KINDS["conditions"]),
        is_phi=True,
        help="ICD-10-CM code or category: E11 covers E11.0 to E11.9; type part of a name to see its codes",
        extra={"lookup": "conditions"},
    ),
    _token_field("medication", "Medication", "medications", is_phi=True, group=CLINICAL),
    _token_field("procedure", "Procedure (CPT)", "procedures", is_phi=True, group=CLINICAL),
    _token_field("lab_result", "Lab result", "lab_results", is_phi=True, group=CLINICAL),
    _token_field("treatment_plan", "Treatment plan", "treatment_plans", is_phi=True, group=CLINICAL),
    _token_field("vaccination", "Vaccination", "vaccinations", is_phi=True, group=CLINICAL),
    _token_field("hospitalization", "Hospitalization", "hospitalizations", is_phi=True, group=CLINICAL),
    Field(
        "provider",
        "Provider",
        CLINICAL,
        ValueType.TEXT,
        TOKENS,
        s.TokenArray("clinical_tokens", normalize.PROVIDER_TOKEN_KIND),
        is_phi=True,
    ),
    Field(
        "sensitive_category",
        "Sensitive category",
        CLINICAL,
        ValueType.CHOICE,
        ("in", "not_in"),
        s.TextArray("sensitive_categories"),
        is_phi=True,
        choices=tuple(SensitiveCategory.choices),
    ),
    Field(
        "journey_stage",
        "Journey stage",
        JOURNEY,
        ValueType.CHOICE,
        EQUALITY,
        s.Column("journey_stage"),
        choices=tuple(JourneyStage.choices),
    ),
    Field(
        "tag", "Tag", JOURNEY, ValueType.TEXT, TOKENS, s.TokenArray("tag_tokens", normalize.TAG_TOKEN_KIND)
    ),
    Field(
        "segment",
        "Saved segment",
        JOURNEY,
        ValueType.SEGMENT,
        ("in_segment", "not_in_segment"),
        s.SegmentMembership(),
    ),
    Field("consent", "Consent topic", CONSENT, ValueType.TOPIC, ("granted", "not_granted"), s.ConsentTopic()),
    Field("suppressed", "On the suppression list", CONSENT, ValueType.BOOLEAN, ("eq",), s.Suppressed()),
    Field(
        "added",
        "Added as a contact",
        BEHAVIOUR,
        ValueType.DAYS,
        RECENCY,
        s.Recency("created_at"),
    ),
]

_FIELDS += [
    Field(
        f"engagement.{name}",
        label,
        BEHAVIOUR,
        ValueType.DAYS,
        ENGAGEMENT,
        s.Engagement(kind),
        help="Automated opens and clicks (scanners, prefetch) are not counted",
    )
    for name, label, kind in (
        ("opened", "Opened an email", "open"),
        ("clicked", "Clicked a link", "click"),
        ("converted", "Converted", "conversion"),
        ("form_submitted", "Submitted a form", "form_submission"),
        ("page_viewed", "Viewed a page", "page_view"),
    )
]

FIELDS: dict[str, Field] = {f.name: f for f in _FIELDS}
GROUPS: tuple[str, ...] = (DEMOGRAPHIC, LOCATION, CLINICAL, JOURNEY, CONSENT, BEHAVIOUR)


CUSTOM_FIELD = re.compile(r"^custom\.([a-z0-9_-]{1,50})$")


def custom_field(key: str) -> Field:
    """A tenant-defined segmentable field (`custom.<key>`), matched by its keyed token.

    Counted as PHI whatever class the tenant declared: the registry cannot see the tenant, and
    treating it as PHI only adds review (a clinical reviewer, an authorization), never a leak."""
    return Field(
        f"custom.{key}",
        f"Custom field {key}",
        DEMOGRAPHIC,
        ValueType.TEXT,
        TOKENS,
        s.TokenArray("demographic_tokens", f"{normalize.CUSTOM_TOKEN_PREFIX}{key}"),
        is_phi=True,
    )


def field_get(name: object) -> Field | None:
    if not isinstance(name, str):
        return None
    found = FIELDS.get(name)
    if found is None and (match := CUSTOM_FIELD.match(name)):
        return custom_field(match.group(1))
    return found

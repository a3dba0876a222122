"""What a caller may say about a contact (`ContactInput`), how it is checked, and what is derived
from it: blind indexes, keyed tokens, de-identified segmentation columns, sensitive flags.

Error messages name the field and the rule, never the value: they end up in import error reports
and API responses, which are not PHI stores.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from django.utils import timezone

from healthmail.crypto import blind

from . import icd10, reference
from .addresses import address_problem
from .models import CustomField, JourneyStage

DEMOGRAPHIC_FIELDS = (
    "gender",
    "ethnicity",
    "education",
    "employment",
    "marital_status",
    "family_status",
    "income_band",
    "preferred_language",
    "insurance_type",
    "religion",
    # An IANA time zone name (Pacific/Auckland): the contact's local day for date-triggered journeys.
    # Demographic PHI, sealed: some zones name an area smaller than a state (America/Indiana/Knox).
    "time_zone",
)
# What pages call each demographic (registered as the label kind "demographic").
DEMOGRAPHIC_LABELS = {
    "gender": "Gender",
    "ethnicity": "Ethnicity",
    "education": "Education",
    "employment": "Employment",
    "marital_status": "Marital status",
    "family_status": "Family status",
    "income_band": "Income band",
    "preferred_language": "Preferred language",
    "insurance_type": "Insurance type",
    "religion": "Religion",
    "time_zone": "Time zone",
}
CLINICAL_LIST_FIELDS = (
    "conditions",
    "medications",
    "treatment_plans",
    "procedures",
    "lab_results",
    "hospitalizations",
    "vaccinations",
)
CLINICAL_FIELDS = (*CLINICAL_LIST_FIELDS, "provider", "last_visit")
ADDRESS_FIELDS = ("line1", "line2", "city", "state", "zip")

# Clinical list → token kind (blind.normalize upper-cases and strips these kinds). Segmentation
# matches `blind.token(tenant, kind, code)` against Contact.clinical_tokens.
CLINICAL_TOKEN_KINDS = {
    "conditions": "condition",
    "medications": "medication",
    "procedures": "procedure",
    "vaccinations": "vaccine",
    "lab_results": "lab",
    "treatment_plans": "treatment_plan",
    "hospitalizations": "hospitalization",
}
PROVIDER_TOKEN_KIND = "provider"  # noqa: S105 - a token kind, not a secret
TAG_TOKEN_KIND = "tag"  # noqa: S105
CUSTOM_TOKEN_PREFIX = "custom."  # noqa: S105

# The encrypted columns a ContactInput field lands in (input name → model field).
PHI_COLUMNS = {
    "email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone": "phone",
    "postal_address": "postal_address",
    "birth_date": "birth_date",
    "external_ids": "external_ids",
    "demographics": "demographics",
    "clinical": "clinical",
    "custom": "custom_fields",
}
# Input fields merged key by key into what is stored (a None value removes the key).
MERGED_FIELDS = ("external_ids", "demographics", "clinical", "custom")

MAX_TEXT = 200
MAX_LIST_ITEMS = 200
ICD10_CODE = re.compile(r"^[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
ZIP_CODE = re.compile(r"^(\d{5})(-?\d{4})?$")
SYSTEM_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
OLDEST_BIRTH_YEAR = 1900
TRUE_WORDS = {"true", "yes", "y", "1"}
FALSE_WORDS = {"false", "no", "n", "0"}


@functools.cache
def _time_zones() -> dict[str, str]:
    # Zone names only: "localtime", "posixrules" and the like are files, not places.
    return {name.lower(): name for name in zoneinfo.available_timezones() if "/" in name or name == "UTC"}


def time_zone_name(value: str) -> str | None:
    """The IANA name, spelled as the database spells it (any letter case accepted); None if unknown."""
    return _time_zones().get(value.strip().lower())


@dataclasses.dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclasses.dataclass
class ContactInput:
    """Everything a caller can provide. None means "not provided: keep what is stored"."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    postal_address: dict[str, str] | None = None  # line1, line2, city, state, zip
    birth_date: datetime.date | str | None = None  # a date, or YYYY-MM-DD / MM/DD/YYYY
    external_ids: dict[str, str] | None = None  # {system: id}
    demographics: dict[str, str | None] | None = None  # keys in DEMOGRAPHIC_FIELDS (None: refused)
    clinical: dict[str, Any] | None = None  # keys in CLINICAL_FIELDS
    journey_stage: str | None = None
    tags: list[str] | None = None
    custom: dict[str, Any] | None = None  # {custom field key: value}

    def validate(self) -> list[str]:
        """Per-field error messages (empty when valid); custom fields are checked by the service."""
        return [str(error) for error in self.cleaned()[1]]

    def cleaned(self, *, today: datetime.date | None = None) -> tuple[ContactInput, list[FieldError]]:
        """A normalized copy (trimmed, empty → not provided, dates parsed) and the errors found.

        `today` (the local date; looked up when not given) lets a batch look it up once."""
        return _Cleaner(self, today or timezone.localdate()).run()


_CONTROL = re.compile(r"[\x00-\x1f]")
_PHONE_CHARACTERS = re.compile(r"[0-9+().\-\s]+")
_NON_DIGITS = re.compile(r"\D")
_LIST_SEPARATORS = re.compile(r"[;|]")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_JOURNEY_STAGES = frozenset(JourneyStage.values)
_JOURNEY_STAGE_NAMES = ", ".join(JourneyStage.values)


class _Cleaner:
    def __init__(self, data: ContactInput, today: datetime.date):
        self.data = data
        self.today = today
        self.errors: list[FieldError] = []

    def error(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def run(self) -> tuple[ContactInput, list[FieldError]]:
        d = self.data
        out = ContactInput(
            email=self.email(d.email),
            first_name=self.text("first_name", d.first_name, 100),
            last_name=self.text("last_name", d.last_name, 100),
            phone=self.phone(d.phone),
            postal_address=self.address(d.postal_address),
            birth_date=self.birth_date(d.birth_date),
            external_ids=self.external_ids(d.external_ids),
            demographics=self.demographics(d.demographics),
            clinical=self.clinical(d.clinical),
            journey_stage=self.journey_stage(d.journey_stage),
            tags=self.string_list("tags", d.tags, max_length=50),
            custom=self.mapping("custom", d.custom),
        )
        return out, self.errors

    def text(self, field: str, value: Any, max_length: int = MAX_TEXT) -> str | None:
        if value is None:
            return None
        if type(value) is not str:  # the common case skips the type checks
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                self.error(field, "must be text")
                return None
            value = str(value)
        text = value.strip()
        if _CONTROL.search(text):
            self.error(field, "contains control characters")
            return None
        if len(text) > max_length:
            self.error(field, f"is longer than {max_length} characters")
            return None
        return text or None

    def email(self, value: Any) -> str | None:
        email = self.text("email", value, 254)
        if email is None:
            return None
        problem = address_problem(email)
        if problem is not None:
            self.error("email", problem)
            return None
        return email

    def phone(self, value: Any) -> str | None:
        phone = self.text("phone", value, 32)
        if phone is None:
            return None
        if not _PHONE_CHARACTERS.fullmatch(phone):
            self.error("phone", "may contain only digits, spaces and + ( ) . -")
            return None
        digits = _NON_DIGITS.sub("", phone)
        if not 7 <= len(digits) <= 15:
            self.error("phone", "must have between 7 and 15 digits")
            return None
        return phone

    def date(self, field: str, value: Any) -> datetime.date | None:
        if value is None or isinstance(value, datetime.date):
            return value.date() if isinstance(value, datetime.datetime) else value
        text = self.text(field, value, 32)
        if text is None:
            return None
        iso = _ISO_DATE.fullmatch(text)  # the usual shape, without strptime's cost
        if iso is not None:
            try:
                return datetime.date(int(iso[1]), int(iso[2]), int(iso[3]))
            except ValueError:
                pass  # not a real date: the same error as below
        for pattern in ("%Y-%m-%d", "%m/%d/%Y"):
            try:
                return datetime.datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a date
            except ValueError:
                continue
        shape_ok = re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}", text)
        self.error(field, "is not a real calendar date" if shape_ok else "must be YYYY-MM-DD or MM/DD/YYYY")
        return None

    def birth_date(self, value: Any) -> datetime.date | None:
        born = self.date("birth_date", value)
        if born is None:
            return None
        if born > self.today:
            self.error("birth_date", "is in the future")
            return None
        if born.year < OLDEST_BIRTH_YEAR:
            self.error("birth_date", f"is before {OLDEST_BIRTH_YEAR}")
            return None
        return born

    def mapping(self, field: str, value: Any, allowed: tuple[str, ...] = ()) -> dict | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.error(field, "must be an object of named values")
            return None
        unknown = sorted(str(key) for key in value if allowed and key not in allowed)
        if unknown:
            self.error(field, f"unknown keys {', '.join(unknown)} (allowed: {', '.join(allowed)})")
        return {str(key): item for key, item in value.items() if not allowed or key in allowed}

    def address(self, value: Any) -> dict[str, str] | None:
        raw = self.mapping("postal_address", value, ADDRESS_FIELDS)
        if raw is None:
            return None
        address = {}
        for key in ADDRESS_FIELDS:
            text = self.text(f"postal_address.{key}", raw.get(key))
            if text:
                address[key] = text
        if "state" in address:
            address["state"] = address["state"].upper()
            if address["state"] not in reference.US_STATES:
                self.error("postal_address.state", "is not a US state or territory code (e.g. CA)")
                del address["state"]
        if "zip" in address:
            match = ZIP_CODE.fullmatch(address["zip"])
            if match is None:
                self.error("postal_address.zip", "must be a 5-digit ZIP code or ZIP+4")
                del address["zip"]
        return address or None

    def external_ids(self, value: Any) -> dict[str, str] | None:
        raw = self.mapping("external_ids", value)
        if raw is None:
            return None
        ids: dict[str, str] = {}
        for system, identifier in raw.items():
            name = system.strip().lower()
            if not SYSTEM_NAME.fullmatch(name):
                self.error("external_ids", "system names are 1-32 letters, digits, '.', '_' or '-'")
                continue
            text = self.text(f"external_ids.{name}", identifier, 128)
            if text:
                ids[name] = text
        return ids or None

    def demographics(self, value: Any) -> dict[str, str | None] | None:
        raw = self.mapping("demographics", value, DEMOGRAPHIC_FIELDS)
        if raw is None:
            return None
        values: dict[str, str | None] = {}
        for key, item in raw.items():
            values[key] = self.text(f"demographics.{key}", item, 100)
        for key in ("gender", "preferred_language"):
            item = values.get(key)
            if item and len(item) > 16:
                self.error(f"demographics.{key}", "is longer than 16 characters")
                values[key] = None
        zone = values.get("time_zone")
        if zone:
            values["time_zone"] = time_zone_name(zone)
            if values["time_zone"] is None:
                self.error("demographics.time_zone", "is not a time zone name like America/Chicago")
        return values

    def clinical(self, value: Any) -> dict[str, Any] | None:
        raw = self.mapping("clinical", value, CLINICAL_FIELDS)
        if raw is None:
            return None
        values: dict[str, Any] = {}
        for key, item in raw.items():
            if key == "provider":
                values[key] = self.text("clinical.provider", item)
            elif key == "last_visit":
                visit = self.date("clinical.last_visit", item)
                values[key] = visit.isoformat() if visit else None
            else:
                values[key] = self.string_list(f"clinical.{key}", item)
        for code in values.get("conditions") or ():
            if not ICD10_CODE.fullmatch(code.upper()):
                self.error("clinical.conditions", "each condition must be an ICD-10 code such as E11.9")
                values["conditions"] = None
                break
        return values

    def string_list(self, field: str, value: Any, max_length: int = MAX_TEXT) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = _LIST_SEPARATORS.split(value)
        if not isinstance(value, list | tuple):
            self.error(field, "must be a list")
            return None
        if len(value) > MAX_LIST_ITEMS:
            self.error(field, f"has more than {MAX_LIST_ITEMS} items")
            return None
        items = [self.text(field, item, max_length) for item in value]
        return list(dict.fromkeys(item for item in items if item))

    def journey_stage(self, value: Any) -> str | None:
        stage = self.text("journey_stage", value, 32)
        if stage is None:
            return None
        stage = stage.lower().replace(" ", "_").replace("-", "_")
        if stage not in _JOURNEY_STAGES:
            self.error("journey_stage", f"must be one of {_JOURNEY_STAGE_NAMES}")
            return None
        return stage


def clean_custom(
    values: dict[str, Any], definitions: dict[str, CustomField]
) -> tuple[dict, list[FieldError]]:
    """Check custom values against the tenant's declared fields; None removes a value."""
    cleaned: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key, value in values.items():
        definition = definitions.get(key)
        field = f"custom.{key}"
        if definition is None:
            errors.append(FieldError(field, "is not a custom field of this organization"))
            continue
        if value is None or value == "":
            cleaned[key] = None
            continue
        try:
            cleaned[key] = _custom_value(definition, value)
        except ValueError as error:
            errors.append(FieldError(field, str(error)))
    return cleaned, errors


def _custom_value(definition: CustomField, value: Any) -> Any:
    kind = definition.type
    if kind == CustomField.Type.NUMBER:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        return int(number) if number.is_integer() else number
    if kind == CustomField.Type.BOOLEAN:
        word = str(value).strip().lower()
        if isinstance(value, bool):
            return value
        if word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError("must be yes or no")
    text = str(value).strip()
    if len(text) > 500 or any(ord(char) < 32 for char in text):
        raise ValueError("must be at most 500 printable characters")
    if kind == CustomField.Type.DATE:
        try:
            return datetime.date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError("must be a date YYYY-MM-DD") from None
    if kind == CustomField.Type.CHOICE and text not in definition.choices:
        raise ValueError(f"must be one of {', '.join(definition.choices)}")
    return text


def age_on(born: datetime.date, today: datetime.date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def derived_columns(
    tenant,
    state: dict[str, Any],
    segmentable_custom: set[str],
    today: datetime.date,
    *,
    token: Callable[[Any, str, str], int] | None = None,
    blind_index: Callable[[str, str], bytes] | None = None,
    view: blind.IndexVersions | None = None,
) -> dict[str, Any]:
    """Every stored column of a contact computed from its merged input `state` (input field names).

    `token` and `blind_index` may be memoized versions of the blind.py functions (a batch passes
    its own, since the same tags and codes come back row after row), computed under `view`: the
    one view of an index-key rotation's stage every index and next index of the row is computed
    from (blind.blind_index_pair: two reads may straddle a step of the rotation)."""
    view = view or blind.versions(tenant)
    if blind_index is None:
        blind_index = functools.partial(blind.blind_index, tenant, state=view)
    if token is None:
        token = functools.partial(blind.token, state=view)
    email, phone = state.get("email"), state.get("phone")
    address = state.get("postal_address") or {}
    demographics = {k: v for k, v in (state.get("demographics") or {}).items() if v}
    clinical = {k: v for k, v in (state.get("clinical") or {}).items() if v}
    custom = {k: v for k, v in (state.get("custom") or {}).items() if v is not None}
    born = state.get("birth_date")
    if isinstance(born, str):
        born = datetime.date.fromisoformat(born)

    columns: dict[str, Any] = {
        "email": email,
        "email_index": blind_index("email", email) if email else None,
        # Under the version an index-key rotation is adding (blind.py: chained kinds), else None.
        "email_index_next": blind.blind_index_next(tenant, "email", email, state=view) if email else None,
        "first_name": state.get("first_name"),
        "last_name": state.get("last_name"),
        "phone": phone,
        "phone_index": blind_index("phone", phone) if phone else None,
        "postal_address": address or None,
        "birth_date": born.isoformat() if born else None,
        "external_ids": state.get("external_ids") or None,
        "demographics": demographics or None,
        "clinical": clinical or None,
        "custom_fields": custom or None,
        "journey_stage": state.get("journey_stage") or "",
        "state": address.get("state", ""),
        "zip3": _zip3(address.get("zip", "")),
        "gender": (demographics.get("gender") or "").lower(),
        "language": (demographics.get("preferred_language") or "").lower(),
        "birth_year": None,
        "age_90_or_older": False,
        "is_minor": False,
    }
    if born is not None:
        age = age_on(born, today)
        columns["age_90_or_older"] = age >= reference.AGE_FOLDED_AT
        columns["birth_year"] = None if columns["age_90_or_older"] else born.year
        columns["is_minor"] = age < reference.ADULT_AGE
    columns.update(
        segmentation_columns(
            tenant,
            demographics=demographics,
            clinical=clinical,
            custom=custom,
            segmentable_custom=segmentable_custom,
            token=token,
        )
    )
    tags = [(TAG_TOKEN_KIND, tag) for tag in state.get("tags") or ()]
    columns["tag_tokens"] = _tokens(tenant, tags, token)
    columns["tag_tokens_next"] = (
        None
        if view.pending is None
        else sorted({blind.token_next(tenant, k, v, state=view) for k, v in tags})
    )
    return columns


def segmentation_columns(
    tenant,
    *,
    demographics: Mapping[str, Any] | None,
    clinical: Mapping[str, Any] | None,
    custom: Mapping[str, Any] | None,
    segmentable_custom: set[str],
    token: Callable[[Any, str, str], int] = blind.token,
) -> dict[str, Any]:
    """The keyed tokens and flags segmentation matches on, from the stored demographics, clinical
    and custom values alone (no identifiers needed): what `reindex_conditions` recomputes when the
    derivation rules change (e.g. conditions gaining their ICD-10-CM ancestors)."""
    demographics = {k: v for k, v in (demographics or {}).items() if v}
    clinical = {k: v for k, v in (clinical or {}).items() if v}
    custom = {k: v for k, v in (custom or {}).items() if v is not None}
    segment_pairs = list(demographics.items()) + [
        (f"{CUSTOM_TOKEN_PREFIX}{key}", str(value))
        for key, value in custom.items()
        if key in segmentable_custom
    ]
    return {
        "demographic_tokens": _tokens(tenant, segment_pairs, token),
        "clinical_tokens": _tokens(tenant, _clinical_codes(clinical), token),
        "sensitive_categories": sensitive_categories(clinical),
    }


def _zip3(zip_code: str) -> str:
    if len(zip_code) < 5:
        return ""
    prefix = zip_code[:3]
    return "000" if prefix in reference.RESTRICTED_ZIP3 else prefix


def _clinical_codes(clinical: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [
        (kind, code)
        for field, kind in CLINICAL_TOKEN_KINDS.items()
        if field != "conditions"
        for code in clinical.get(field) or ()
    ]
    # A condition is also stored under its category and subcategories, so E11 finds E11.9.
    pairs += [
        (CLINICAL_TOKEN_KINDS["conditions"], level)
        for code in clinical.get("conditions") or ()
        for level in icd10.condition_with_ancestors(code)
    ]
    if clinical.get("provider"):
        pairs.append((PROVIDER_TOKEN_KIND, clinical["provider"]))
    return pairs


def _tokens(tenant, pairs: list[tuple[str, str]], token: Callable[[Any, str, str], int]) -> list[int]:
    return sorted({token(tenant, kind, value) for kind, value in pairs})


# Pure functions of a code, asked about the same few codes row after row.
_category_of_condition = functools.lru_cache(maxsize=4096)(reference.category_of_condition)
_category_of_medication = functools.lru_cache(maxsize=4096)(reference.category_of_medication)


def sensitive_categories(clinical: dict[str, Any]) -> list[str]:
    found = {_category_of_condition(code) for code in clinical.get("conditions") or ()}
    found |= {_category_of_medication(name) for name in clinical.get("medications") or ()}
    return sorted(category for category in found if category is not None)

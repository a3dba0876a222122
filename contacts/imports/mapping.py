"""Column mapping: the contact fields a column can fill, suggestions from header names, and the
plan that turns one row into a `ContactInput` (plus consent evidence) with per-column errors.

Each target shows the PHI class of the field it lands in, read from the model's field declaration
(one source of truth). An empty cell means "not provided": an import never erases stored values.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Set
from dataclasses import dataclass, field
from typing import cast

from contacts.models import Contact, CustomField
from contacts.normalize import (
    ADDRESS_FIELDS,
    CLINICAL_FIELDS,
    DEMOGRAPHIC_FIELDS,
    SYSTEM_NAME,
    ContactInput,
)
from healthmail.crypto.fields import EncryptedFieldMixin, PhiClass
from healthmail.errors import ApplicationError

from . import consent_columns
from .consent_columns import ConsentColumns, ConsentEvidenceRow
from .storage import job_headers

NOT_ENCRYPTED = "Segmentation value (kept as a keyed token or plain code)"
CONSENT_DATE, CONSENT_TOPIC, CONSENT_SOURCE = "consent.date", "consent.topic", "consent.source"
IDENTITY_TARGETS = ("email", "external_ids")


class MappingInvalid(ApplicationError):
    pass


@dataclass(frozen=True)
class Target:
    key: str  # also the field name in ContactInput error messages ("postal_address.state")
    label: str
    group: str
    phi_class: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def phi_label(self) -> str:
        return PhiClass(self.phi_class).label if self.phi_class else NOT_ENCRYPTED


def _phi(model_field: str) -> str:
    # An encrypted column (every target names one): its PHI class.
    return cast(EncryptedFieldMixin, Contact._meta.get_field(model_field)).phi_class


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold())


_IDENTITY = (
    ("email", "Email", "email", ("email", "emailaddress", "mail")),
    ("first_name", "First name", "first_name", ("firstname", "first", "givenname", "fname")),
    ("last_name", "Last name", "last_name", ("lastname", "last", "surname", "familyname", "lname")),
    ("phone", "Phone", "phone", ("phone", "phonenumber", "mobile", "cell", "telephone", "tel")),
    ("birth_date", "Date of birth", "birth_date", ("birthdate", "dob", "dateofbirth", "birthday")),
    ("external_ids", "External id (EHR/CRM)", "external_ids", ("externalid", "mrn", "patientid", "ehrid")),
)
_ADDRESS_ALIASES = {
    "line1": ("address", "address1", "addressline1", "street", "streetaddress"),
    "line2": ("address2", "addressline2", "apt", "suite"),
    "city": ("city", "town"),
    "state": ("state", "st", "province"),
    "zip": ("zip", "zipcode", "postalcode", "postcode"),
}
_CONSENT = (
    (CONSENT_DATE, "Consent: date given", ("consentdate", "optindate", "consentedon", "consentgivenon")),
    (CONSENT_TOPIC, "Consent: topic", ("consenttopic", "topic")),
    (CONSENT_SOURCE, "Consent: source", ("consentsource", "optinsource")),
)


def targets_for(*, tenant) -> dict[str, Target]:
    """Every field a column may fill for this tenant (its custom fields included), by key."""
    targets = [
        Target(key, label, "Identity", _phi(model), aliases) for key, label, model, aliases in _IDENTITY
    ]
    for part in ADDRESS_FIELDS:
        label = {"line1": "Address line 1", "line2": "Address line 2", "zip": "ZIP code"}.get(
            part, part.title()
        )
        targets.append(
            Target(
                f"postal_address.{part}",
                label,
                "Postal address",
                _phi("postal_address"),
                _ADDRESS_ALIASES[part],
            )
        )
    for name in DEMOGRAPHIC_FIELDS:
        label = name.replace("_", " ").capitalize()
        targets.append(
            Target(f"demographics.{name}", label, "Demographics", _phi("demographics"), (_words(name),))
        )
    for name in CLINICAL_FIELDS:
        label = name.replace("_", " ").capitalize()
        targets.append(Target(f"clinical.{name}", label, "Clinical", _phi("clinical"), (_words(name),)))
    targets.append(Target("journey_stage", "Journey stage", "Segmentation", "", ("journeystage", "stage")))
    targets.append(Target("tags", "Tags (separated by ; or |)", "Segmentation", "", ("tags", "tag")))
    for custom in CustomField.objects.filter(tenant_id=getattr(tenant, "pk", tenant)).order_by("label"):
        targets.append(
            Target(f"custom.{custom.key}", custom.label, "Custom fields", custom.phi_class,
                   (_words(custom.key), _words(custom.label)))
        )  # fmt: skip
    for key, label, aliases in _CONSENT:
        targets.append(
            Target(key, label, "Consent evidence", PhiClass.DATE if key == CONSENT_DATE else "", aliases)
        )
    return {target.key: target for target in targets}


def suggest(headers: list[str], targets: dict[str, Target]) -> dict[int, str]:
    """Column index → target key, for headers that name a field; each target at most once."""
    by_alias: dict[str, str] = {}
    for target in targets.values():
        for alias in (*target.aliases, _words(target.label), _words(target.key)):
            by_alias.setdefault(alias, target.key)
    suggestions: dict[int, str] = {}
    for index, header in enumerate(headers):
        key = by_alias.get(_words(header))
        if key and key not in suggestions.values():
            suggestions[index] = key
    return suggestions


@dataclass(frozen=True)
class Converted:
    contact: ContactInput | None
    errors: list[tuple[int | None, str]] = field(default_factory=list)  # (column index, message)
    evidence: ConsentEvidenceRow | None = None


@dataclass
class ImportPlan:
    headers: list[str]
    column_targets: dict[int, str]
    targets: dict[str, Target]
    external_id_system: str = ""
    consent: ConsentColumns | None = None
    consent_topics: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._index_of = {key: index for index, key in self.column_targets.items()}
        self._contact_columns = [
            (index, key)
            for index, key in sorted(self.column_targets.items())
            if not key.startswith("consent.")
        ]

    @classmethod
    def build(
        cls,
        *,
        headers: list[str],
        column_targets: dict[int, str],
        targets: dict[str, Target],
        external_id_system: str = "",
        consent_topic: str = "",
        consent_source: str = "",
        consent_topics: Set[str] = frozenset(),
    ) -> ImportPlan:
        """Check a mapping the person chose; MappingInvalid says what to fix."""
        column_targets = {int(i): key for i, key in column_targets.items() if key}
        unknown = [key for key in column_targets.values() if key not in targets]
        if unknown or any(not 0 <= i < len(headers) for i in column_targets):
            raise MappingInvalid(
                "The mapping names a column or field that does not exist; map the columns again."
            )
        repeated = sorted(
            {targets[k].label for k in column_targets.values() if list(column_targets.values()).count(k) > 1}
        )
        if repeated:
            raise MappingInvalid(f"Each field can be filled from one column only: {', '.join(repeated)}.")
        if not any(key in IDENTITY_TARGETS for key in column_targets.values()):
            raise MappingInvalid("Map a column to Email or to External id: contacts are matched by them.")
        system = external_id_system.strip().lower()
        if "external_ids" in column_targets.values() and not SYSTEM_NAME.fullmatch(system):
            raise MappingInvalid(
                "Name the system the external ids come from (e.g. epic, 1-32 letters, digits, '.', '_', '-')."
            )
        column_of = {key: index for index, key in column_targets.items()}
        consent = cls._consent(column_of, consent_topic.strip().casefold(), consent_source, consent_topics)
        return cls(headers, column_targets, targets, system, consent, set(consent_topics))

    @staticmethod
    def _consent(
        column_of: dict[str, int], topic: str, source: str, topics: Set[str]
    ) -> ConsentColumns | None:
        wanted = topic or source or any(key.startswith("consent.") for key in column_of)
        if not wanted:
            return None
        if not topics:
            raise MappingInvalid(
                "Importing consent evidence is not available yet: leave the consent columns unmapped."
            )
        if CONSENT_DATE not in column_of:
            raise MappingInvalid("Consent evidence needs a column with the date consent was given.")
        if (CONSENT_TOPIC in column_of) == bool(topic):
            raise MappingInvalid("Choose the consent topic: either a column or one topic for every row.")
        if topic and topic not in topics:
            raise MappingInvalid("Unknown consent topic.")
        source_key = consent_columns.source_key(source) if source else None
        if (CONSENT_SOURCE in column_of) == bool(source) or (source and source_key is None):
            raise MappingInvalid(
                "Choose where consent was given: either a column or one known source for every row."
            )
        return ConsentColumns(
            date_column=column_of[CONSENT_DATE],
            topic_column=column_of.get(CONSENT_TOPIC),
            topic_value=topic,
            source_column=column_of.get(CONSENT_SOURCE),
            source_value=source_key or "",
        )

    def as_options(self) -> dict:
        return {
            "external_id_system": self.external_id_system,
            "consent": self.consent.as_options() if self.consent else None,
            "consent_topics": sorted(self.consent_topics),
        }

    @classmethod
    def from_job(cls, job, *, targets: dict[str, Target]) -> ImportPlan:
        options = job.options or {}
        return cls(
            headers=job_headers(job),
            column_targets={int(i): key for i, key in job.mapping.items()},
            targets=targets,
            external_id_system=options.get("external_id_system", ""),
            consent=ConsentColumns.from_options(options.get("consent")),
            consent_topics=set(options.get("consent_topics", [])),
        )

    def column_of_field(self, field_name: str) -> int | None:
        """The column behind an error's field name ("postal_address.state", "external_ids.epic")."""
        if field_name.startswith("external_ids"):
            field_name = "external_ids"
        return self._index_of.get(field_name)

    def message(self, field_name: str, message: str) -> str:
        target = self.targets.get("external_ids" if field_name.startswith("external_ids") else field_name)
        return f"{target.label if target else field_name} {message}"

    def convert(
        self, values: list[str], *, job_id: uuid.UUID, row_number: int, today: datetime.date
    ) -> Converted:
        fields: dict = {}
        for index, key in self._contact_columns:
            text = values[index].strip()
            if not text:
                continue
            if key == "external_ids":
                fields["external_ids"] = {self.external_id_system: text}
            elif "." in key:
                group, name = key.split(".", 1)
                fields.setdefault("custom" if group == "custom" else group, {})[name] = text
            else:
                fields[key] = text
        if not fields.get("email") and not fields.get("external_ids"):
            return Converted(None, [(None, "The row has neither an email nor an external id.")])
        evidence: consent_columns.ConsentEvidenceRow | None = None
        errors: list[tuple[int | None, str]] = []
        if self.consent is not None:
            evidence, errors = consent_columns.row_evidence(
                self.consent,
                values=values,
                topics=self.consent_topics,
                job_id=job_id,
                row_number=row_number,
                today=today,
            )
        if errors:
            return Converted(None, errors)
        # Field rules are checked once, by contact_upsert_many; its errors name the field, which
        # field_errors() turns back into the file's column.
        return Converted(ContactInput(**fields), [], evidence)

    def field_errors(self, errors) -> list[tuple[int | None, str]]:
        return [(self.column_of_field(e.field), self.message(e.field, e.message)) for e in errors]

"""The merge fields a template may use: an explicit whitelist, each field PHI or not.

PHI-ness is not declared here: it is read from the class of the contacts column the value comes
from (`EncryptedTextField(phi_class=...)`, `CustomField.phi_class`), the one source of truth.
Health information (clinical details, dates tied to a person, message content supplied by an EHR)
counts as PHI; identifiers and demographics (a first name, a city) are personal data but not
health information, the line segmentation draws too (segmentation/registry.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contacts.models import Contact, CustomField
from healthmail.crypto.fields import EncryptedFieldMixin, PhiClass

PHI_CLASSES = frozenset({PhiClass.CLINICAL, PhiClass.DATE, PhiClass.CONTENT})
DATA_PREFIX = "data."  # transactional messages: values the calling system supplies


def is_phi_class(phi_class: str) -> bool:
    return phi_class in PHI_CLASSES


@dataclass(frozen=True)
class MergeField:
    name: str  # the dotted path a template writes: {{ contact.first_name }}
    label: str
    phi_class: str  # "" for fields that say nothing about a person (organization, links)
    sample: str  # what previews and tests show: obviously synthetic
    column: str = ""  # the Contact column the value is read from ("" for non-contact fields)
    key: str = ""  # the key inside a JSON column

    @property
    def phi(self) -> bool:
        return is_phi_class(self.phi_class)

    @property
    def personal(self) -> bool:
        """Says something about the recipient (identifiers included), PHI or not."""
        return bool(self.column) or self.name.startswith(DATA_PREFIX)


def _contact_class(column: str) -> str:
    field = Contact._meta.get_field(column)
    if not isinstance(field, EncryptedFieldMixin):  # a merge field reads an encrypted column only
        raise TypeError(f"Contact.{column} is not an encrypted column: it has no PHI class")
    return field.phi_class


def _contact_field(name: str, label: str, column: str, sample: str, key: str = "") -> MergeField:
    # The class comes from a JSON column's key when the column mixes classes: clinical.provider is
    # clinical, postal_address.city an identifier.
    return MergeField(name, label, _contact_class(column), sample, column=column, key=key)


CONTACT_FIELDS: tuple[MergeField, ...] = (
    _contact_field("contact.first_name", "First name", "first_name", "Synthetic"),
    _contact_field("contact.last_name", "Last name", "last_name", "Patient 0001"),
    _contact_field("contact.city", "City", "postal_address", "Testville", key="city"),
    _contact_field("contact.birth_date", "Date of birth", "birth_date", "1970-01-01"),
    _contact_field("contact.provider", "Provider", "clinical", "Dr. Synthetic Alpha", key="provider"),
    _contact_field("contact.last_visit", "Last visit", "clinical", "2024-12-01", key="last_visit"),
)

SYSTEM_FIELDS: tuple[MergeField, ...] = (
    MergeField("organization.name", "Organization name", "", "Synthetic Clinic"),
    MergeField("links.unsubscribe", "Unsubscribe link", "", "https://example.org/unsubscribe"),
    MergeField("links.preferences", "Email preferences link", "", "https://example.org/preferences"),
)


def custom_merge_field(field: CustomField) -> MergeField:
    return MergeField(
        f"custom.{field.key}",
        field.label,
        field.phi_class,
        f"Sample {field.label}",
        column="custom_fields",
        key=field.key,
    )


def data_merge_field(name: str) -> MergeField:
    """An API-supplied value: its meaning is unknown to us, so it is treated as PHI."""
    return MergeField(name, name.removeprefix(DATA_PREFIX), PhiClass.CONTENT, f"[{name}]")


@dataclass(frozen=True)
class FieldSet:
    """The whitelist for one tenant and one kind of message."""

    fields: Mapping[str, MergeField]
    allow_data: bool = False

    def get(self, name: str) -> MergeField | None:
        if name in self.fields:
            return self.fields[name]
        if self.allow_data and name.startswith(DATA_PREFIX) and name.count(".") == 1:
            key = name.removeprefix(DATA_PREFIX)
            if key.isidentifier():
                return data_merge_field(name)
        return None

    @property
    def roots(self) -> frozenset[str]:
        roots = {name.split(".")[0] for name in self.fields}
        return frozenset(roots | ({"data"} if self.allow_data else set()))


def field_set(
    *, tenant, allow_data: bool = False, custom_fields: list[CustomField] | None = None
) -> FieldSet:
    """Contact and system fields plus the tenant's custom fields. The caller runs in tenant context."""
    if custom_fields is None:
        custom_fields = list(CustomField.objects.for_tenant(tenant))
    fields = {f.name: f for f in (*CONTACT_FIELDS, *SYSTEM_FIELDS)}
    fields.update({f.name: f for f in map(custom_merge_field, custom_fields)})
    return FieldSet(fields, allow_data=allow_data)


def contact_values(contact: Contact, names: set[str] | frozenset[str]) -> dict[str, Any]:
    """The values of the named contact fields: only those columns are decrypted (minimum necessary).
    Reads as whoever runs it: the delivery worker (system) or a caller inside phi_access()."""
    values: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    for name in sorted(names):
        field = next((f for f in CONTACT_FIELDS if f.name == name), None)
        if field is None and name.startswith("custom."):
            field = MergeField(name, "", "", "", column="custom_fields", key=name.removeprefix("custom."))
        if field is None or not field.column:
            continue
        if field.column not in loaded:
            loaded[field.column] = getattr(contact, field.column)
        raw = loaded[field.column]
        value = (raw or {}).get(field.key) if field.key else raw
        values[name] = "" if value is None else str(value)
    return values


def sample_values(field_set_: FieldSet, names: set[str] | frozenset[str]) -> dict[str, Any]:
    values = {}
    for name in names:
        field = field_set_.get(name)
        if field is not None:
            values[name] = field.sample
    return values


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """{"contact.first_name": "A"} -> {"contact": {"first_name": "A"}}: the shape templates read."""
    nested: dict[str, Any] = {}
    for name, value in values.items():
        root, _, leaf = name.partition(".")
        nested.setdefault(root, {})[leaf] = value
    return nested

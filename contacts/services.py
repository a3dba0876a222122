"""Contact writes: batch upsert (API, import, seed), delete, custom field definitions.

`contact_upsert_many` is the one write path for contact data. It costs a constant number of queries
per batch whatever its size (two lookups, one insert, one update, the external-id links, one audit
event), which is what lets an import of a million rows finish in minutes.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
from healthmail.crypto import access, rowkeys
from healthmail.errors import ApplicationError, Conflict, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from healthmail.tenants.services import require_phi_intake

from . import binding, bulk, normalize, shredding
from .changes import contacts_changed
from .models import Contact, ContactExternalId, CustomField
from .normalize import ContactInput, FieldError

__all__ = [
    "ContactInput",
    "FieldError",
    "UpsertResult",
    "UpsertStatus",
    "contact_delete",
    "contact_replace",
    "contact_upsert",
    "contact_upsert_many",
    "custom_field_create",
    "custom_field_delete",
]

MAX_BATCH = 1000


class UpsertStatus(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    UNCHANGED = "unchanged", "Unchanged"
    # What a writer without PHI access is told for every row written: whether the contact existed
    # (created vs updated) or already held the written values (unchanged) is not its to learn.
    ACCEPTED = "accepted", "Accepted"
    ERROR = "error", "Error"


@dataclasses.dataclass(frozen=True)
class UpsertResult:
    index: int  # position in the input list
    status: str  # UpsertStatus
    contact_id: uuid.UUID | None  # None for errors and for rows a dry run would create
    errors: tuple[FieldError, ...] = ()

    @property
    def created(self) -> bool:
        return self.status == UpsertStatus.CREATED

    @property
    def messages(self) -> list[str]:
        return [str(error) for error in self.errors]


class BatchTooLarge(ApplicationError):
    status_code = 413
    title = "Batch too large"


def external_id_indexes(tenant, system: str, value: str) -> list[bytes]:
    """Every index a link of this id may be stored under (two while an index-key rotation runs)."""
    return normalize.blind.lookup(tenant, f"external_id:{system}", value)


@dataclasses.dataclass
class _Entry:
    """One contact touched by the batch, with its merged input-state and pending column changes.

    A new contact is never built as a model instance (costly per row): its columns are the
    defaults plus `changes`. A stored one keeps its loaded instance to compare against."""

    contact_id: uuid.UUID
    stored: Contact | None  # None: created by this batch
    state: dict[str, Any]
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    seen: bool = False  # an earlier row of the batch already wrote to it

    @property
    def is_new(self) -> bool:
        return self.stored is None

    def current(self, name: str) -> Any:
        if name in self.changes:
            return self.changes[name]
        if self.stored is None:
            return _NEW_CONTACT[name]
        value = getattr(self.stored, name)
        return bytes(value) if isinstance(value, memoryview) else value


def _defaults() -> dict[str, Any]:
    return {field.name: field.get_default() for field in Contact._meta.concrete_fields}


_NEW_CONTACT = _defaults()


def contact_upsert_many(
    *,
    tenant: Tenant,
    actor: Actor,
    inputs: Sequence[ContactInput],
    source: str,
    dry_run: bool = False,
    writer_reads_phi: bool = True,
) -> list[UpsertResult]:
    """Create or update contacts: by external id first, else by email (blind index).

    Fields left as None keep what is stored; dict fields (external ids, demographics, clinical,
    custom) merge key by key. Invalid rows get errors and are skipped; the rest are written.

    Refused as a whole (PhiFlowRefused) for a tenant without a BAA in force or suspended.

    A writer that cannot read PHI (`writer_reads_phi=False`) is told "accepted" for every row it
    wrote: "unchanged" would confirm that the stored value (a guessed diagnosis) equals the one
    written, and "created" vs "updated" whether the address was already a patient's. The audit
    event keeps the true outcome.
    """
    if len(inputs) > MAX_BATCH:
        raise BatchTooLarge(f"At most {MAX_BATCH} contacts per batch; this one has {len(inputs)}.")
    if inputs:
        require_phi_intake(tenant)  # every contact field is PHI: none is received without a BAA
    # Each stored contact's key is unwrapped once for the batch (rowkeys.py).
    with tenant_context(tenant), rowkeys.key_scope():
        batch = _Batch(tenant, inputs)
        batch.plan()
        if not dry_run:
            batch.write()
        # The true outcomes ("accepted" is only what a writer without PHI access is told).
        counts = {status: 0 for status in UpsertStatus.values if status != UpsertStatus.ACCEPTED}
        for result in batch.results:
            counts[result.status] += 1
        audit.record(
            actor=actor,
            action="contacts.upsert",
            target=("contacts.contact", ""),
            tenant=tenant,
            details={"source": source, "dry_run": dry_run, "rows": len(inputs), **counts},
        )
    if writer_reads_phi:
        return batch.results
    return [
        result
        if result.status == UpsertStatus.ERROR
        # A dry run's ids would tell a stored contact (an id) from one it would create (none).
        else dataclasses.replace(
            result, status=UpsertStatus.ACCEPTED, contact_id=None if dry_run else result.contact_id
        )
        for result in batch.results
    ]


def contact_upsert(
    *, tenant: Tenant, actor: Actor, data: ContactInput, source: str, writer_reads_phi: bool = True
) -> UpsertResult:
    return contact_upsert_many(
        tenant=tenant, actor=actor, inputs=[data], source=source, writer_reads_phi=writer_reads_phi
    )[0]


def contact_replace(
    *,
    tenant: Tenant,
    actor: Actor,
    contact: Contact,
    data: ContactInput,
    replaced: Collection[str],
    source: str,
    writer_reads_phi: bool = True,
) -> UpsertResult:
    """Write `data` onto one contact named by its id (a FHIR update), never onto the one its ids or
    address would match. The fields in `replaced` take exactly the value given: a field left None
    is cleared, `external_ids` is the whole set (links of ids no longer given are removed), and
    `demographics.<key>` replaces that one key (the others are kept). Fields not in `replaced`
    merge as in an upsert.

    An id or address that already names another contact is refused (an ERROR result), as in an
    upsert. Same BAA gate, encryption, audit (`contacts.upsert`, mode "replace") and masking of the
    outcome for a writer without PHI access."""
    unknown = set(replaced) - _REPLACEABLE
    if unknown:
        raise ValueError(f"not replaceable: {sorted(unknown)}")
    require_phi_intake(tenant)
    if contact.tenant_id != tenant.pk or contact.deleted_at is not None:
        raise NotFound("No such contact.")
    with tenant_context(tenant), rowkeys.key_scope():
        batch = _Batch(tenant, [data], target=contact.pk, replaced=frozenset(replaced))
        batch.plan()
        batch.write()
        [result] = batch.results
        audit.record(
            actor=actor,
            action="contacts.upsert",
            target=contact,
            tenant=tenant,
            details={"source": source, "mode": "replace", "rows": 1, "status": str(result.status)},
        )
    if writer_reads_phi or result.status == UpsertStatus.ERROR:
        return result
    return dataclasses.replace(result, status=UpsertStatus.ACCEPTED)


# What contact_replace may replace: whole input fields, or one demographic key.
_REPLACEABLE = frozenset(
    ["email", "first_name", "last_name", "phone", "postal_address", "birth_date", "external_ids"]
    + [f"demographics.{key}" for key in normalize.DEMOGRAPHIC_FIELDS]
)


class _Batch:
    def __init__(
        self,
        tenant: Tenant,
        inputs: Sequence[ContactInput],
        *,
        target: uuid.UUID | None = None,
        replaced: frozenset[str] = frozenset(),
    ):
        self.tenant = tenant
        self.inputs = inputs
        self.target = target  # contact_replace: the one contact every row writes to
        self.replaced = replaced
        self.kept_links: dict[uuid.UUID, set[tuple[str, bytes]]] = {}  # replaced external ids
        self.results: list[UpsertResult] = []
        self.entries: dict[uuid.UUID, _Entry] = {}
        self.links: dict[tuple[str, bytes], uuid.UUID] = {}  # (system, index) → contact id
        self.link_rows: dict[tuple[str, bytes], ContactExternalId] = {}
        self.new_links: dict[tuple[str, bytes], uuid.UUID] = {}  # links to write → contact id
        self.email_owner: dict[bytes, uuid.UUID] = {}  # live contacts only
        self.email_of: dict[uuid.UUID, bytes] = {}
        self.unconfirmed: set[bytes] = set()  # indexes found on rows whose own value denies them
        self.today = timezone.localdate()
        self.loaded: dict[uuid.UUID, Contact] = {}
        # One view of an index-key rotation's stage for the whole batch: every index it writes and
        # the next index beside it are computed from it (blind.blind_index_pair).
        self.view = normalize.blind.versions(tenant)
        self.indexes: dict[tuple[str, str], bytes] = {}  # (kind, value) → blind index, this batch
        self.tokens: dict[tuple[str, str], int] = {}  # (kind, value) → keyed token, this batch

    # -- planning ---------------------------------------------------------------------------
    def plan(self) -> None:
        definitions = {field.key: field for field in CustomField.objects.filter(tenant=self.tenant)}
        self.segmentable = {key for key, field in definitions.items() if field.segmentable}
        cleaned: list[tuple[ContactInput, list[FieldError]]] = []
        for data in self.inputs:
            clean, errors = data.cleaned(today=self.today)
            if clean.custom:
                clean.custom, custom_errors = normalize.clean_custom(clean.custom, definitions)
                errors += custom_errors
            cleaned.append((clean, errors))
        self._load([clean for clean, errors in cleaned if not errors])
        # Comparing with what is stored needs the stored plaintext; the service reads it as the
        # system and discloses nothing but created/updated/unchanged, so no person-facing access.
        grant = access.Grant("contacts.contact", frozenset(normalize.PHI_COLUMNS.values()), None)
        with access.granted(grant):
            for index, (clean, errors) in enumerate(cleaned):
                if errors:
                    self.results.append(UpsertResult(index, UpsertStatus.ERROR, None, tuple(errors)))
                else:
                    self.results.append(self._apply(index, clean))

    def _ext_keys(self, data: ContactInput) -> list[tuple[str, bytes]]:
        return [
            (system, self._blind_index(f"external_id:{system}", value))
            for system, value in (data.external_ids or {}).items()
        ]

    def _load(self, inputs: list[ContactInput]) -> None:
        # Matching ids first (one array parameter each, and nothing to load for new contacts), then
        # the rows themselves.
        # A link may be stored under any index a lookup gives (two while an index-key rotation
        # runs): each is mapped to the key the batch works with, the index written now.
        ext_keys: dict[tuple[str, bytes], tuple[str, bytes]] = {}
        for data in inputs:
            for system, value in (data.external_ids or {}).items():
                key = (system, self._blind_index(f"external_id:{system}", value))
                for index in normalize.blind.lookup(self.tenant, f"external_id:{system}", value):
                    ext_keys[(system, index)] = key
        # The same for addresses: a contact may hold the index under either version (or, while a
        # rotation fills in next indexes, the older one).
        emails: dict[bytes, bytes] = {}
        for data in inputs:
            if data.email:
                written = self._blind_index("email", data.email)
                for index in normalize.blind.lookup(self.tenant, "email", data.email):
                    emails[index] = written
        link_contact_ids: set[uuid.UUID] = set()
        link_ids = bulk.external_ids_with_index(
            tenant_id=self.tenant.pk, value_indexes=list({index for _, index in ext_keys})
        )
        if link_ids:
            for row in ContactExternalId.objects.filter(tenant=self.tenant, pk__in=link_ids):
                found = ext_keys.get((row.system, bytes(row.value_index)))
                if found is not None:
                    self.link_rows[found] = row
                    link_contact_ids.add(row.contact_id)
        contact_ids = link_contact_ids.union(
            bulk.live_contacts_with_email(tenant_id=self.tenant.pk, email_indexes=list(emails))
        )
        if self.target is not None:
            contact_ids.add(self.target)
        if contact_ids:
            contacts = list(Contact.objects.filter(tenant=self.tenant, pk__in=contact_ids))
            rowkeys.row_ciphers(self.tenant.pk, [contact.object_key_id for contact in contacts])
            for contact in contacts:
                self.loaded[contact.pk] = contact
                if contact.deleted_at is None and contact.email_index is not None:
                    stored_index = bytes(contact.email_index)
                    email_index = emails.get(stored_index, stored_index)
                    # An index its row's own address does not confirm (copied or swapped in the
                    # database) matches nobody: no row may be written through it.
                    if not binding.index_confirmed(contact, "email", stored_index, found_by="contact upsert"):
                        self.unconfirmed.add(email_index)
                        continue
                    self.email_owner[email_index] = contact.pk
                    self.email_of[contact.pk] = email_index
        for key, row in self.link_rows.items():
            linked = self.loaded.get(row.contact_id)
            if linked is None or linked.deleted_at is not None:
                continue
            if binding.link_confirmed(row, linked, found_by="contact upsert"):
                self.links[key] = row.contact_id
            else:
                self.unconfirmed.add(key[1])

    def _apply(self, index: int, data: ContactInput) -> UpsertResult:
        ext_keys = self._ext_keys(data)
        targets = {self.links[key] for key in ext_keys if key in self.links}
        if len(targets) > 1:
            message = "these ids belong to different contacts; merge them before upserting"
            return UpsertResult(index, UpsertStatus.ERROR, None, (FieldError("external_ids", message),))
        email_index = self._blind_index("email", data.email) if data.email else None
        if email_index in self.unconfirmed or any(key[1] in self.unconfirmed for key in ext_keys):
            message = "matches a stored contact whose data does not confirm it (damaged); nothing was written"
            field = "email" if email_index in self.unconfirmed else "external_ids"
            return UpsertResult(index, UpsertStatus.ERROR, None, (FieldError(field, message),))
        if self.target is not None:
            if targets - {self.target}:
                message = "these ids belong to another contact"
                return UpsertResult(index, UpsertStatus.ERROR, None, (FieldError("external_ids", message),))
            if self.target not in self.loaded or self.loaded[self.target].deleted_at is not None:
                raise NotFound("No such contact.")
            targets = {self.target}
        target = next(iter(targets), None)
        if target is None and email_index is not None:
            target = self.email_owner.get(email_index)
        entry = self._entry(target)
        owner = self.email_owner.get(email_index) if email_index is not None else None
        if owner is not None and owner != entry.contact_id:
            message = "is already the address of another contact"
            return UpsertResult(index, UpsertStatus.ERROR, None, (FieldError("email", message),))

        if self.replaced:
            _clear(entry.state, self.replaced)
            if "external_ids" in self.replaced:
                self.kept_links[entry.contact_id] = {
                    (system, found)
                    for system, value in (data.external_ids or {}).items()
                    for found in external_id_indexes(self.tenant, system, value)
                }
        _merge(entry.state, data)
        columns = normalize.derived_columns(
            self.tenant,
            entry.state,
            self.segmentable,
            self.today,
            token=self._token,
            blind_index=self._blind_index,
            view=self.view,
        )
        if "tags" not in entry.state:
            del columns["tag_tokens"]  # tags are stored only as tokens: keep them when not given
            del columns["tag_tokens_next"]
        changed = {name: value for name, value in columns.items() if entry.current(name) != value}
        new_keys = [key for key in ext_keys if self.links.get(key) != entry.contact_id]
        entry.changes.update(changed)
        self._claim_email(entry, columns.get("email_index"))
        for key in new_keys:
            self.links[key] = entry.contact_id
            self.new_links[key] = entry.contact_id
        first_time, entry.seen = not entry.seen, True
        if entry.is_new and first_time:
            return UpsertResult(index, UpsertStatus.CREATED, entry.contact_id)
        status = UpsertStatus.UPDATED if (changed or new_keys) else UpsertStatus.UNCHANGED
        return UpsertResult(index, status, entry.contact_id)

    def _blind_index(self, kind: str, value: str) -> bytes:
        key = (kind, value)
        index = self.indexes.get(key)
        if index is None:
            index = self.indexes[key] = normalize.blind.blind_index(self.tenant, kind, value, state=self.view)
        return index

    def _token(self, tenant, kind: str, value: str) -> int:
        # Tags, codes and demographic values repeat across rows: one keyed hash per distinct value.
        key = (kind, value)
        token = self.tokens.get(key)
        if token is None:
            token = self.tokens[key] = normalize.blind.token(tenant, kind, value, state=self.view)
        return token

    def _entry(self, contact_id: uuid.UUID | None) -> _Entry:
        if contact_id is not None and contact_id in self.entries:
            return self.entries[contact_id]
        if contact_id is None:
            entry = _Entry(uuid.uuid4(), None, {})
        else:
            contact = self.loaded[contact_id]
            entry = _Entry(contact_id, contact, _stored_state(contact))
        self.entries[entry.contact_id] = entry
        return entry

    def _claim_email(self, entry: _Entry, email_index: bytes | None) -> None:
        previous = self.email_of.get(entry.contact_id)
        if previous is not None and previous != email_index:
            del self.email_owner[previous]
        if email_index is not None:
            self.email_owner[email_index] = entry.contact_id
            self.email_of[entry.contact_id] = email_index

    # -- writing ----------------------------------------------------------------------------
    def write(self) -> None:
        created = [(entry.contact_id, entry.changes) for entry in self.entries.values() if entry.is_new]
        updated = [entry for entry in self.entries.values() if not entry.is_new and entry.changes]
        repointed = []
        for key, row in self.link_rows.items():
            if key in self.new_links:
                row.contact_id = self.new_links.pop(key)
                row.value_index = key[1]  # a link stored under an older index key moves with it
                repointed.append(row)
        tenant_id = self.tenant.pk
        try:
            with transaction.atomic():
                bulk.contacts_insert(tenant_id=tenant_id, rows=created)
                bulk.contacts_update(
                    tenant_id=tenant_id,
                    ids=[entry.contact_id for entry in updated],
                    changes=[entry.changes for entry in updated],
                )
                if repointed:
                    ContactExternalId.objects.bulk_update(repointed, ["contact", "value_index"])
                self._remove_dropped_links()
                links = [(system, index, contact) for (system, index), contact in self.new_links.items()]
                bulk.external_ids_insert(tenant_id=tenant_id, links=links)
                contacts_changed(
                    tenant_id=tenant_id,
                    contact_ids=[contact_id for contact_id, _ in created] + [e.contact_id for e in updated],
                )
        except IntegrityError:
            raise Conflict(
                "Another import or API call changed the same contacts at the same moment; retry the batch.",
                code="concurrent_upsert",
            ) from None

    def _remove_dropped_links(self) -> None:
        """contact_replace of external_ids: the ids no longer given stop finding the contact."""
        for contact_id, kept in self.kept_links.items():
            rows = ContactExternalId.objects.filter(tenant=self.tenant, contact_id=contact_id)
            dropped = [
                row.pk
                for row in rows.only("pk", "system", "value_index")
                if (row.system, bytes(row.value_index)) not in kept
            ]
            if dropped:
                ContactExternalId.objects.filter(tenant=self.tenant, pk__in=dropped).delete()


def _clear(state: dict[str, Any], replaced: frozenset[str]) -> None:
    """contact_replace: the replaced fields as if never given, so the row's values are exactly the input's."""
    for path in replaced:
        name, _, key = path.partition(".")
        if key:
            state[name] = {k: v for k, v in (state.get(name) or {}).items() if k != key}
        else:
            state[name] = None


def _stored_state(contact: Contact) -> dict[str, Any]:
    state = {name: getattr(contact, column) for name, column in normalize.PHI_COLUMNS.items()}
    state["journey_stage"] = contact.journey_stage
    return state


_INPUT_FIELDS = tuple(field.name for field in dataclasses.fields(ContactInput))


def _merge(state: dict[str, Any], data: ContactInput) -> None:
    for name in _INPUT_FIELDS:
        value = getattr(data, name)
        if value is None:
            continue
        if name in normalize.MERGED_FIELDS:
            merged = {**(state.get(name) or {}), **value}
            value = {key: item for key, item in merged.items() if item is not None}
        state[name] = value


@transaction.atomic
def contact_delete(*, tenant: Tenant, actor: Actor, contact: Contact, reason: str) -> Contact:
    """Take the contact off every list and crypto-shred it now (shredding.py), unless a legal hold
    keeps it: then retention shreds it once the hold is released."""
    if contact.tenant_id != tenant.pk:
        raise ApplicationError("Contact not found.")
    with tenant_context(tenant):
        if contact.deleted_at is None:
            contact.deleted_at = timezone.now()
            Contact.objects.filter(pk=contact.pk, tenant=tenant, deleted_at__isnull=True).update(
                deleted_at=contact.deleted_at
            )
            kept = shredding.contact_kept(contact)
            done = None if kept else shredding.contacts_shred(tenant_id=tenant.pk, contact_ids=[contact.pk])
            audit.record(
                actor=actor,
                action="contacts.delete",
                target=contact,
                tenant=tenant,
                reason=reason,
                details={"kept_for_legal_hold": kept, "keys_destroyed": done.keys if done else 0},
            )
            contacts_changed(tenant_id=tenant.pk, contact_ids=[contact.pk])
    return contact


@transaction.atomic
def custom_field_create(
    *,
    tenant: Tenant,
    actor: Actor,
    key: str,
    label: str,
    field_type: str,
    phi_class: str,
    choices: Sequence[str] = (),
    segmentable: bool = False,
) -> CustomField:
    with tenant_context(tenant):
        if CustomField.objects.filter(tenant=tenant, key=key).exists():
            raise Conflict(f"A custom field with the key “{key}” already exists.")
        if field_type == CustomField.Type.CHOICE and not choices:
            raise ApplicationError("A choice field needs at least one choice.")
        field = CustomField.objects.create(
            tenant=tenant,
            key=key,
            label=label,
            type=field_type,
            phi_class=phi_class,
            choices=list(choices) if field_type == CustomField.Type.CHOICE else [],
            segmentable=segmentable,
        )
        audit.record(
            actor=actor,
            action="contacts.custom_field_create",
            target=field,
            tenant=tenant,
            details={"key": key, "type": field_type, "phi_class": phi_class},
        )
    return field


@transaction.atomic
def custom_field_delete(*, tenant: Tenant, actor: Actor, field: CustomField) -> None:
    """Removes the definition; stored values stay encrypted on contacts until next written."""
    with tenant_context(tenant):
        audit.record(
            actor=actor,
            action="contacts.custom_field_delete",
            target=field,
            tenant=tenant,
            details={"key": field.key},
        )
        field.delete()

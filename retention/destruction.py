"""How records are destroyed. Each function runs inside the disposal batch's transaction, on records
that were locked and checked against holds and exceptions in that same transaction, and answers with
what the DATABASE did: the ids its statements returned (`DELETE ... RETURNING`, `UPDATE ...
RETURNING`), never ids read beforehand or collected by Django. The batch compares them with what it
asked for and stops the run on any difference (disposal.py).

- `delete_records`: the rows go, with what cascades from them (Django's collector finds every
  relation, so a model added later is handled too, but every row, the category's own and the
  cascaded ones, is deleted here by a statement that returns its ids; rows Django would delete on
  its "fast path" are counted like any other). Every per-object key those rows used is deleted as
  well, so ciphertext left in backups or WAL can never be opened (crypto-shredding).
- `shred_content`: the content key is deleted and the ciphertext column cleared; the row's
  metadata stays (it has its own category and its own clock).
- `tombstone_contacts`: every encrypted field, blind index and keyed token of the contact is
  cleared and its own key deleted; the row id stays because consent evidence (kept six years)
  points at it.

`REMAINS_SQL` says, per destroyer, when a record is still there (over alias `r`): the disposal run
checks, before it issues a certificate, that no record it counts as destroyed still is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connection, models
from django.db.models.deletion import Collector

from contacts.models import Contact, ContactExternalId
from contacts.shredding import TOMBSTONE
from healthmail.crypto.models import ObjectKey
from healthmail.errors import ApplicationError

from .registry import Category


class DestructionMismatch(ApplicationError):
    """What the database did differs from what the run planned or counted: no certificate."""


@dataclass
class Destroyed:
    """The ids the database returned: the category's own records, and rows of other tables that
    went with them (model label -> ids)."""

    ids: list[str]
    cascaded: dict[str, list[str]] = field(default_factory=dict)
    removed: bool = False  # the category's own rows left their table (not cleared in place)


def _key_fields(model: type[models.Model]) -> list[str]:
    return [
        f.attname
        for f in model._meta.concrete_fields
        if isinstance(f, models.ForeignKey) and f.related_model is ObjectKey
    ]


def shred_keys(tenant_id: uuid.UUID, key_ids: Iterable) -> int:
    """Delete object keys without Django's collector: every row that used them is already gone or
    cleared in this transaction (the deferred foreign keys are checked at commit)."""
    key_ids = {k for k in key_ids if k}
    if not key_ids:
        return 0
    return ObjectKey.objects.filter(tenant_id=tenant_id, pk__in=key_ids)._raw_delete(DEFAULT_DB_ALIAS)


def _pk_cast(model: type[models.Model]) -> str:
    return "uuid" if isinstance(model._meta.pk, models.UUIDField) else "bigint"


def _returning(sql: str, params: list) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def delete_returning(queryset: models.QuerySet) -> list[str]:
    """DELETE the rows of a queryset; the ids PostgreSQL says it deleted."""
    model = queryset.model
    inner, params = queryset.values("pk").query.sql_with_params()
    table, pk = model._meta.db_table, model._meta.pk.column
    return _returning(
        f'DELETE FROM "{table}" WHERE "{pk}" IN ({inner}) RETURNING "{pk}"::text',  # noqa: S608
        list(params),
    )


def _delete_by_ids(model: type[models.Model], tenant_id, ids: list[str]) -> list[str]:
    table, pk = model._meta.db_table, model._meta.pk.column
    return _returning(
        f'DELETE FROM "{table}" WHERE tenant_id = %s AND "{pk}" = ANY(%s::{_pk_cast(model)}[])'  # noqa: S608
        f' RETURNING "{pk}"::text',
        [tenant_id, ids],
    )


def delete_records(category: Category, tenant_id: uuid.UUID, record_ids: list[str]) -> Destroyed:
    model = category.source.model_class()
    rows = model.objects.filter(tenant_id=tenant_id, pk__in=record_ids)
    collector = Collector(using=DEFAULT_DB_ALIAS, origin=rows)
    collector.collect(rows)
    keys: set = set()
    for collected_model, instances in collector.data.items():
        for name in _key_fields(collected_model):
            keys.update(getattr(instance, name) for instance in instances)
    for queryset in collector.fast_deletes:
        for name in _key_fields(queryset.model):
            keys.update(queryset.values_list(name, flat=True))
    # Django found what goes; the statements below delete it and say what they deleted. The
    # collector keeps what it does best (SET NULL updates, signals of models that have them) for
    # the instances it loaded; their counts are checked against the rows it reads as deleted.
    cascaded: dict[str, list[str]] = {}
    fast, collector.fast_deletes = collector.fast_deletes, []
    for queryset in fast:
        if queryset.model is not model:
            cascaded.setdefault(queryset.model._meta.label, []).extend(delete_returning(queryset))
    collector.data.pop(model, None)
    loaded = {m._meta.label: {str(i.pk) for i in instances} for m, instances in collector.data.items()}
    _, counts = collector.delete()
    for label, ids in loaded.items():
        if counts.get(label, 0) != len(ids):
            raise DestructionMismatch(
                f"Deleting {category.label.lower()} removed {counts.get(label, 0)} {label} rows, "
                f"not the {len(ids)} found with them.",
                code="cascade_mismatch",
            )
        cascaded.setdefault(label, []).extend(ids)
    destroyed = _delete_by_ids(model, tenant_id, list(record_ids))
    shred_keys(tenant_id, keys)
    return Destroyed(destroyed, {label: ids for label, ids in cascaded.items() if ids}, removed=True)


def shred_content(category: Category, tenant_id: uuid.UUID, record_ids: list[str]) -> Destroyed:
    model = category.source.model_class()
    keys = model.objects.filter(tenant_id=tenant_id, pk__in=record_ids).values_list(
        "content_key_id", flat=True
    )
    keys = set(keys)
    table, pk = model._meta.db_table, model._meta.pk.column
    shredded = _returning(
        f'UPDATE "{table}" SET content = NULL, content_key_id = NULL WHERE tenant_id = %s'  # noqa: S608
        f' AND "{pk}" = ANY(%s::{_pk_cast(model)}[]) RETURNING "{pk}"::text',
        [tenant_id, list(record_ids)],
    )
    shred_keys(tenant_id, keys)
    return Destroyed(shredded)


def tombstone_contacts(category: Category, tenant_id: uuid.UUID, record_ids: list[str]) -> Destroyed:

    rows = Contact.objects.filter(tenant_id=tenant_id, pk__in=record_ids)
    key_ids = list(rows.exclude(object_key_id=None).values_list("object_key_id", flat=True))
    updated = rows.update(**TOMBSTONE)
    # The ids the database now holds as tombstones, read back under the batch's lock.
    tombstoned = _returning(
        f"SELECT r.id::text FROM {Contact._meta.db_table} r WHERE r.tenant_id = %s"  # noqa: S608
        f" AND r.id = ANY(%s::uuid[]) AND {CONTACT_TOMBSTONED_SQL}",
        [tenant_id, list(record_ids)],
    )
    if updated != len(tombstoned):
        raise DestructionMismatch(
            f"{updated} contact records were updated but {len(tombstoned)} are tombstones.", code="tombstone"
        )
    # The contacts' external-id links (blind indexes of identifiers) go with them: counted from what
    # the statement deleted, like every row removed along with a record.
    links = delete_returning(ContactExternalId.objects.filter(tenant_id=tenant_id, contact_id__in=tombstoned))
    # Each contact's own key goes too (crypto-shredding: its row in earlier backups opens with
    # nothing once the epoch key wrapping it is destroyed).
    keys = delete_returning(ObjectKey.objects.filter(tenant_id=tenant_id, pk__in=key_ids))
    cascaded = {ContactExternalId._meta.label: links, ObjectKey._meta.label: keys}
    return Destroyed(tombstoned, {label: ids for label, ids in cascaded.items() if ids})


CONTACT_TOMBSTONED_SQL = (
    "r.email IS NULL AND r.first_name IS NULL AND r.last_name IS NULL AND r.phone IS NULL"
    " AND r.birth_date IS NULL AND r.postal_address IS NULL AND r.external_ids IS NULL"
    " AND r.demographics IS NULL AND r.clinical IS NULL AND r.custom_fields IS NULL"
    " AND r.email_index IS NULL AND r.phone_index IS NULL AND r.object_key_id IS NULL"
)


# When a record counted as destroyed is still there, per destroyer (SQL over the record's alias `r`).
REMAINS_SQL = {
    delete_records: "TRUE",
    shred_content: "r.content_key_id IS NOT NULL OR r.content IS NOT NULL",
    tombstone_contacts: f"NOT ({CONTACT_TOMBSTONED_SQL})",
}

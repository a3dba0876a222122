"""Damaged records: found, contained, reported.

A ciphertext that fails authentication (tampered, moved, its key lost) or an index its row's own
value denies is damage to one record, not to the system around it. Whoever meets one — a list page,
the API, key rotation — keeps going without it and calls `damage_report`, which raises a critical
alert naming the record (table and id, never a value) once per record and problem.

`damaged_rows(tenant_id)` walks a tenant's keys, object keys and every encrypted column (and the
checks other apps register, such as the contacts' index bindings) and yields each damaged record:
the basis of `manage.py integrity_scan`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from django.db import connection
from psycopg import sql

from healthmail.audit_trail import alert_integrity_damaged
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import TenantOwnedModel

from . import keys, rowkeys
from .errors import DecryptionError
from .fields import EncryptedFieldMixin, Sealed, row_aad
from .models import ObjectKey, TenantKey

SCAN_BATCH = 500


@dataclass(frozen=True)
class Damage:
    tenant_id: uuid.UUID
    table: str
    object_id: str
    problem: str

    @property
    def record(self) -> str:
        return f"{self.table} {self.object_id}"

    def __str__(self) -> str:
        return f"{self.record}: {self.problem}"


Check = Callable[[uuid.UUID], Iterator[Damage]]
_checks: list[Check] = []


def integrity_check_register(check: Check) -> None:
    """Higher apps add checks of their own (called with a tenant id, yielding Damage)."""
    if check not in _checks:
        _checks.append(check)


def damage_report(damage: Damage, *, found_by: str) -> None:
    alert_integrity_damaged(
        tenant_id=damage.tenant_id, record=damage.record, problem=damage.problem, found_by=found_by
    )


def undecryptable(tenant_id: uuid.UUID, table: str, object_id: uuid.UUID | str, column: str) -> Damage:
    return Damage(
        tenant_id, table, str(object_id), f"column {column} does not decrypt (tampered, moved or key lost)"
    )


def columns_damage(
    tenant_id: uuid.UUID, table: str, object_id: uuid.UUID | str, values: Mapping[str, bytes | None]
) -> Damage | None:
    """The first column of one row (column → stored ciphertext) that does not decrypt, else None."""
    for column, value in values.items():
        if value is None:
            continue
        try:
            rowkeys.open_field(tenant_id, bytes(value), row_aad(tenant_id, table, column, object_id))
        except DecryptionError:
            return undecryptable(tenant_id, table, object_id, column)
    return None


def sealed_damage(instance: TenantOwnedModel) -> Damage:
    """What is damaged in a loaded model instance whose encrypted field failed to decrypt."""
    table = instance._meta.db_table
    sealed = {
        field.sealed_column: bytes(value)
        for field in instance._meta.concrete_fields
        if isinstance(field, EncryptedFieldMixin)
        and isinstance(value := instance.__dict__.get(field.attname), Sealed)
    }
    found = columns_damage(instance.tenant_id, table, instance.pk, sealed)
    return found or Damage(instance.tenant_id, table, str(instance.pk), "does not decrypt")


def damaged_rows(tenant_id: uuid.UUID) -> Iterator[Damage]:
    """Every damaged record of one tenant: its keys, every encrypted column, the registered checks."""
    from .rotation import encrypted_tables  # rotation reports damage through this module

    yield from _damaged_keys(tenant_id)
    yield from _damaged_object_keys(tenant_id)
    for target in encrypted_tables():
        yield from _damaged_in_table(tenant_id, target.table, target.pk, target.columns)
    for check in _checks:
        yield from check(tenant_id)


def _damaged_keys(tenant_id: uuid.UUID) -> Iterator[Damage]:
    with tenant_context(tenant_id):
        rows = list(TenantKey.objects.filter(tenant_id=tenant_id))
    for row in rows:
        try:
            keys.unwrap(row)
        except DecryptionError as error:
            yield Damage(tenant_id, TenantKey._meta.db_table, str(row.pk), str(error))


def _damaged_object_keys(tenant_id: uuid.UUID) -> Iterator[Damage]:
    from .epochs import object_key_unwrap

    with tenant_context(tenant_id):
        rows = ObjectKey.objects.filter(tenant_id=tenant_id).values_list("pk", "epoch_id", "wrapped_key")
        for object_key_id, epoch_id, wrapped in rows.iterator(chunk_size=SCAN_BATCH):
            try:
                object_key_unwrap(
                    tenant_id=tenant_id,
                    object_key_id=object_key_id,
                    epoch_id=epoch_id,
                    wrapped=bytes(wrapped),
                )
            except DecryptionError as error:
                yield Damage(tenant_id, ObjectKey._meta.db_table, str(object_key_id), str(error))


def _damaged_in_table(
    tenant_id: uuid.UUID, table: str, pk: str, columns: tuple[str, ...]
) -> Iterator[Damage]:
    # Keyset pages on the primary key: constant memory whatever the table's size.
    query = sql.SQL("SELECT {pk}, {cols} FROM {t} WHERE {pk} > %s ORDER BY {pk} LIMIT {n}").format(
        pk=sql.Identifier(pk),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        t=sql.Identifier(table),
        n=sql.Literal(SCAN_BATCH),
    )
    after: uuid.UUID = uuid.UUID(int=0)
    while True:
        with tenant_context(tenant_id), connection.cursor() as cursor:
            cursor.execute(query.as_string(cursor.connection), [after])
            rows = cursor.fetchall()
        for object_id, *values in rows:
            found = columns_damage(tenant_id, table, object_id, dict(zip(columns, values, strict=True)))
            if found is not None:
                yield found
        if len(rows) < SCAN_BATCH:
            return
        after = rows[-1][0]

"""Bulk INSERT and UPDATE of contacts with one array parameter per column (`unnest`).

Django's bulk_create/bulk_update send one parameter per cell (27,000 for 1,000 contacts) and
bulk_update reads attributes through the decrypting descriptor. Here every column travels as one
PostgreSQL array in binary, encrypted values are sealed exactly like the field's own pre_save would
seal them (same associated data, one batch per column), and the statement stays the same size
whatever the batch. COPY is not an option: PostgreSQL refuses COPY FROM into tables under
row-level security.

Rows come in as plain dicts of column values (model field names; plaintext for encrypted fields),
not model instances: building a Contact per row costs more than everything else done here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from django.contrib.postgres.fields import ArrayField
from django.db import connection, models
from django.utils import timezone

from healthmail.crypto import rowkeys
from healthmail.crypto.fields import EncryptedFieldMixin

from .models import Contact, ContactExternalId

# Columns the insert fills itself; every other column takes the row's value or the field default.
_SET_BY_INSERT = ("id", "tenant", "created_at", "updated_at", "object_key_id")


def _array_literal(values: Sequence[Any]) -> str:
    # Only integers and our own TextChoices values (letters and underscores) reach here.
    return "{" + ",".join(str(value) for value in values) + "}"


def _column(
    field: models.Field,
    tenant_id: uuid.UUID,
    object_ids: Sequence[str],
    values: list,
    row_keys: Sequence[rowkeys.RowKey],
) -> list:
    """One column's values as they are sent (sealed under each row's key, array literals, bytes)."""
    if isinstance(field, EncryptedFieldMixin):
        sealed_values = field.seal_column(
            tenant_id=tenant_id, object_ids=object_ids, values=values, row_keys=row_keys
        )
        return [None if sealed is None else bytes(sealed) for sealed in sealed_values]
    if isinstance(field, ArrayField):
        return [None if value is None else _array_literal(value) for value in values]
    return [bytes(value) if isinstance(value, memoryview) else value for value in values]


def _contact_field(name: str) -> models.Field:
    field = Contact._meta.get_field(name)
    if not isinstance(field, models.Field):  # a relation's other side: no column of this table
        raise TypeError(f"Contact.{name} is not a column")
    return field


def _column_name(field: models.Field) -> str:
    if field.column is None:
        raise TypeError(f"Contact.{field.name} is not a column")
    return field.column


def _column_type(field: models.Field) -> str:
    found = field.db_type(connection)
    if found is None:
        raise TypeError(f"Contact.{field.name} has no database type")
    return found


def _element_type(field: models.Field) -> str:
    # Array columns travel as text literals (unnest would flatten a 2-D array), cast on the way in.
    return "text" if isinstance(field, ArrayField) else _column_type(field)


def _execute(sql: str, params: list) -> int:
    """Server-side binding on the same connection and transaction: the arrays travel in binary
    (`%b`) instead of being quoted into the statement text or escaped element by element.
    Returns the number of rows the database reports written."""
    connection.ensure_connection()
    # Django's own error classes (IntegrityError, OperationalError), as its cursors would raise.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _fetch_column(sql: str, params: list) -> list:
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def live_contacts_with_email(*, tenant_id: uuid.UUID, email_indexes: Sequence[bytes]) -> list[uuid.UUID]:
    """Ids of the live contacts holding any of these email indexes (one array, not an IN list)."""
    if not email_indexes:
        return []
    table = connection.ops.quote_name(Contact._meta.db_table)
    return _fetch_column(
        f"SELECT id FROM {table} WHERE tenant_id = %s AND email_index = ANY(%b::bytea[]) "  # noqa: S608 - names come from the model
        "AND email_index IS NOT NULL AND deleted_at IS NULL",
        [tenant_id, list(email_indexes)],
    )


def external_ids_with_index(*, tenant_id: uuid.UUID, value_indexes: Sequence[bytes]) -> list[int]:
    """Ids of the external-id links holding any of these value indexes (any system)."""
    if not value_indexes:
        return []
    table = connection.ops.quote_name(ContactExternalId._meta.db_table)
    return _fetch_column(
        f"SELECT id FROM {table} WHERE tenant_id = %s AND value_index = ANY(%b::bytea[])",  # noqa: S608 - names come from the model
        [tenant_id, list(value_indexes)],
    )


def _insert_fields() -> list[models.Field]:
    return list(Contact._meta.concrete_fields)


def contacts_insert(*, tenant_id: uuid.UUID, rows: Sequence[tuple[uuid.UUID, Mapping[str, Any]]]) -> None:
    """Insert new contacts: (id, {field name: value}); a field not given takes its default."""
    if not rows:
        return
    now = timezone.now()
    ids = [contact_id for contact_id, _values in rows]
    object_ids = [str(contact_id) for contact_id in ids]
    row_keys = rowkeys.row_keys_create(tenant_id, len(rows))  # one new key per contact
    fixed = {"id": ids, "tenant": [tenant_id] * len(rows), "created_at": [now] * len(rows)}
    fixed["updated_at"] = fixed["created_at"]
    fixed["object_key_id"] = [key_id for key_id, _cipher in row_keys]
    fields = _insert_fields()
    arrays = []
    for field in fields:
        if field.name in _SET_BY_INSERT:
            arrays.append(fixed[field.name])
            continue
        default = field.get_default()
        values = [row.get(field.name, default) for _contact_id, row in rows]
        arrays.append(_column(field, tenant_id, object_ids, values, row_keys))
    quote = connection.ops.quote_name
    names = [f"c{position}" for position in range(len(fields))]
    selects = [f"{name}::{_column_type(field)}" for name, field in zip(names, fields, strict=True)]
    unnests = [f"%b::{_element_type(field)}[]" for field in fields]
    sql = (
        f"INSERT INTO {quote(Contact._meta.db_table)} ({', '.join(quote(_column_name(f)) for f in fields)}) "  # noqa: S608 - names come from the model
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(unnests)}) AS t({', '.join(names)})"
    )
    _execute(sql, arrays)


def contacts_update(
    *, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID], changes: Sequence[Mapping[str, Any]]
) -> int:
    """Update many contacts at once, each only in its own changed columns (`changes[i]` of `ids[i]`).
    Returns the number of rows the database updated."""
    if not ids:
        return 0
    changes, row_keys = _with_row_keys(tenant_id, ids, changes)
    names = sorted({name for change in changes for name in change})
    fields = [_contact_field(name) for name in names]
    object_ids = [str(contact_id) for contact_id in ids]
    arrays: list[list[Any]] = [list(ids)]
    for field in fields:
        arrays.append([field.name in change for change in changes])
        values = [change.get(field.name) for change in changes]
        arrays.append(_column(field, tenant_id, object_ids, values, row_keys))
    quote = connection.ops.quote_name
    aliases, unnests, assignments = ["id"], ["%b::uuid[]"], []
    for position, field in enumerate(fields):
        flag, value = f"s{position}", f"v{position}"
        aliases += [flag, value]
        unnests += ["%b::boolean[]", f"%b::{_element_type(field)}[]"]
        column = quote(_column_name(field))
        assignments.append(
            f"{column} = CASE WHEN t.{flag} THEN t.{value}::{_column_type(field)} ELSE c.{column} END"
        )
    sql = (
        f"UPDATE {quote(Contact._meta.db_table)} AS c SET {', '.join(assignments)}, updated_at = %s "  # noqa: S608 - names come from the model
        f"FROM unnest({', '.join(unnests)}) AS t({', '.join(aliases)}) "
        "WHERE c.id = t.id AND c.tenant_id = %s"
    )
    return _execute(sql, [timezone.now(), *arrays, tenant_id])


def _with_row_keys(
    tenant_id: uuid.UUID, ids: Sequence[uuid.UUID], changes: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[rowkeys.RowKey]]:
    """Each updated contact's key, unwrapped once for the batch (one query); a contact written
    before per-contact keys gets one, recorded by the same update. Without encrypted changes, none."""
    encrypted = {f.name for f in Contact._meta.concrete_fields if isinstance(f, EncryptedFieldMixin)}
    if not any(encrypted.intersection(change) for change in changes):
        return list(changes), []
    table = connection.ops.quote_name(Contact._meta.db_table)
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            f"SELECT id, object_key_id FROM {table} WHERE tenant_id = %s AND id = ANY(%b::uuid[])",  # noqa: S608 - names come from the model
            [tenant_id, list(ids)],
        )
        stored = dict(cursor.fetchall())
    ciphers = rowkeys.row_ciphers(tenant_id, stored.values())
    lacking = [contact_id for contact_id in ids if stored.get(contact_id) not in ciphers]
    made = iter(rowkeys.row_keys_create(tenant_id, len(lacking)))
    new_keys = {contact_id: next(made) for contact_id in lacking}
    row_keys: list[rowkeys.RowKey] = []
    updated: list[Mapping[str, Any]] = []
    for contact_id, change in zip(ids, changes, strict=True):
        if contact_id in new_keys:
            row_keys.append(new_keys[contact_id])
            updated.append({**change, "object_key_id": new_keys[contact_id][0]})
        else:
            key_id = stored[contact_id]
            row_keys.append((key_id, ciphers[key_id]))
            updated.append(change)
    return updated, row_keys


def external_ids_insert(*, tenant_id: uuid.UUID, links: Sequence[tuple[str, bytes, uuid.UUID]]) -> None:
    """Insert (system, value index, contact id) links in one statement."""
    if not links:
        return
    table = connection.ops.quote_name(ContactExternalId._meta.db_table)
    sql = (
        f"INSERT INTO {table} (tenant_id, system, value_index, contact_id) "  # noqa: S608 - names come from the model
        "SELECT %s, t.system, t.value_index, t.contact_id "
        "FROM unnest(%b::varchar[], %b::bytea[], %b::uuid[]) AS t(system, value_index, contact_id)"
    )
    systems = [system for system, _index, _contact_id in links]
    indexes = [bytes(index) for _system, index, _contact_id in links]
    contact_ids = [contact_id for _system, _index, contact_id in links]
    _execute(sql, [tenant_id, systems, indexes, contact_ids])

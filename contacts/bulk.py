"""Bulk INSERT and UPDATE of contacts with one array parameter per column (`unnest`).

Django's bulk_create/bulk_update send one parameter per cell (27,000 for 1,000 contacts) and
bulk_update reads attributes through the decrypting descriptor. Here every column travels as one
PostgreSQL array, encrypted values are sealed exactly like the field's own pre_save would seal
them, and the statement stays the same size whatever the batch. COPY is not an option: PostgreSQL
refuses COPY FROM into tables under row-level security.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from django.contrib.postgres.fields import ArrayField
from django.db import connection, models
from django.utils import timezone

from healthmail.crypto.fields import EncryptedFieldMixin

from .models import Contact


def _array_literal(values: Sequence[Any]) -> str:
    # Only integers and our own TextChoices values (letters and underscores) reach here.
    return "{" + ",".join(str(value) for value in values) + "}"


def _prepared(field: models.Field, contact: Contact, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(field, EncryptedFieldMixin):
        contact.__dict__[field.attname] = value
        return bytes(field.pre_save(contact, True))
    if isinstance(field, ArrayField):
        return _array_literal(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _element_type(field: models.Field) -> str:
    # Array columns travel as text literals (unnest would flatten a 2-D array), cast on the way in.
    return "text" if isinstance(field, ArrayField) else field.db_type(connection)


def _execute(sql: str, params: list) -> None:
    """Server-side binding on the same connection and transaction: the arrays travel in binary
    instead of being quoted into the statement text (Django's cursors bind client-side)."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)


def contacts_insert(contacts: Sequence[Contact]) -> None:
    """Insert new contacts whose attributes hold plaintext (sealed here)."""
    if not contacts:
        return
    now = timezone.now()
    fields = [field for field in Contact._meta.concrete_fields]
    arrays = []
    for field in fields:
        if field.name in ("created_at", "updated_at"):
            arrays.append([now] * len(contacts))
        else:
            arrays.append([_prepared(field, c, c.__dict__.get(field.attname)) for c in contacts])
    quote = connection.ops.quote_name
    names = [f"c{position}" for position in range(len(fields))]
    selects = [f"{name}::{field.db_type(connection)}" for name, field in zip(names, fields, strict=True)]
    unnests = [f"%s::{_element_type(field)}[]" for field in fields]
    sql = (
        f"INSERT INTO {quote(Contact._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608 - names come from the model
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(unnests)}) AS t({', '.join(names)})"
    )
    _execute(sql, arrays)


def contacts_update(
    *, tenant_id: uuid.UUID, contacts: Sequence[Contact], changes: Sequence[dict[str, Any]]
) -> None:
    """Update many contacts at once, each only in its own changed columns (`changes[i]`)."""
    if not contacts:
        return
    names = sorted({name for change in changes for name in change})
    fields = [Contact._meta.get_field(name) for name in names]
    arrays: list[list[Any]] = [[contact.pk for contact in contacts]]
    for field in fields:
        arrays.append([field.name in change for change in changes])
        arrays.append(
            [
                _prepared(field, contact, change[field.name]) if field.name in change else None
                for contact, change in zip(contacts, changes, strict=True)
            ]
        )
    quote = connection.ops.quote_name
    aliases, unnests, assignments = ["id"], ["%s::uuid[]"], []
    for position, field in enumerate(fields):
        flag, value = f"s{position}", f"v{position}"
        aliases += [flag, value]
        unnests += ["%s::boolean[]", f"%s::{_element_type(field)}[]"]
        column = quote(field.column)
        assignments.append(
            f"{column} = CASE WHEN t.{flag} THEN t.{value}::{field.db_type(connection)} ELSE c.{column} END"
        )
    sql = (
        f"UPDATE {quote(Contact._meta.db_table)} AS c SET {', '.join(assignments)}, updated_at = %s "  # noqa: S608 - names come from the model
        f"FROM unnest({', '.join(unnests)}) AS t({', '.join(aliases)}) "
        "WHERE c.id = t.id AND c.tenant_id = %s"
    )
    _execute(sql, [timezone.now(), *arrays, tenant_id])

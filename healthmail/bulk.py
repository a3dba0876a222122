"""`insert_unnest(objects)`: many new rows of one model in one statement with an array per column.

    INSERT INTO t (a, b, ...) SELECT * FROM unnest(%s::uuid[], %s::varchar(16)[], ...)

Django's bulk_create sends one parameter per value; for a wide table (the outbox has 34 columns)
psycopg then spends more time splitting that statement than PostgreSQL spends inserting, and Django
more time compiling it than preparing the values. The values are prepared by the fields themselves
(`pre_save` then `get_db_prep_save`, as bulk_create does: defaults, auto_now, encrypted columns with
their row-bound AAD), so the rows are the same. COPY would be faster still, but PostgreSQL refuses
COPY FROM into tables with row-level security.

Only for models whose primary key is set before saving (UUIDs): nothing is read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models

BATCH = 2000


def _column(field: models.Field[Any, Any]) -> str:
    if field.column is None:  # Django names a concrete field's column when it joins its model
        raise TypeError(f"{field!r} has no column.")
    return field.column


def insert_unnest(objects: Sequence[models.Model], *, batch: int = BATCH) -> None:
    if not objects:
        return
    meta = objects[0]._meta
    if meta.pk.get_default() is None:
        raise ValueError(f"{meta.label} has no primary key default: use bulk_create, which reads ids back.")
    fields = list(meta.concrete_fields)
    columns = ", ".join(connection.ops.quote_name(_column(field)) for field in fields)
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
    sql = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) SELECT * FROM unnest({arrays})"  # noqa: S608
    with connection.cursor() as cursor:
        for start in range(0, len(objects), batch):
            chunk = objects[start : start + batch]
            values = [
                [field.get_db_prep_save(field.pre_save(obj, True), connection) for obj in chunk]
                for field in fields
            ]
            cursor.execute(sql, values)
            for obj in chunk:
                obj._state.adding = False
                obj._state.db = connection.alias

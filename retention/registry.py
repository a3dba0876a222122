"""Record categories: what the platform stores about people and messages, when each record's clock
starts, how it is found, scoped by a hold, destroyed and archived.

Every category is declared once, in retention/categories.py (grouped by the app that owns the
model), through `register_category()`; each says how its records move to the archive, or why they
never do. Models are named by label and resolved lazily, so a category whose app is not installed
is simply unavailable. SQL fragments use the alias `r` for the record's table; they produce the
columns a disposal candidate and a hold check need:

    record_id (text), clock_at (timestamptz), contact_id (uuid), source_ref (text), actor_ref (text)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import models

if TYPE_CHECKING:
    from .destruction import Destroyed

DAY = 1
YEAR = 365


@dataclass(frozen=True)
class LegalBasis:
    """One rule a minimum or maximum rests on. `years`: the minimum it implies (None: none)."""

    citation: str
    rule: str
    years: float | None = None
    applies: str = ""

    def as_dict(self) -> dict:
        return {"citation": self.citation, "rule": self.rule, "years": self.years, "applies": self.applies}


@dataclass(frozen=True)
class DefaultPolicy:
    min_days: int
    max_days: int | None
    action: str  # models.Action
    approval_required: bool
    rationale: str
    legal_basis: tuple[LegalBasis, ...] = ()
    archive_after_days: int | None = None


@dataclass(frozen=True)
class Source:
    """One table holding records of a category, with the SQL expressions over its alias `r`."""

    model: str  # app_label.ModelName
    clock: str  # SQL expression whose value starts the retention clock (e.g. "r.created_at")
    contact_sql: str = "NULL::uuid"
    source_sql: str = "NULL::text"
    actor_sql: str = "NULL::text"
    where_sql: str = ""  # extra condition: which rows are records of this category at all
    join_sql: str = ""

    def model_class(self) -> type[models.Model]:
        return apps.get_model(self.model)

    @property
    def table(self) -> str:
        return self.model_class()._meta.db_table

    @property
    def pk_column(self) -> str:
        pk = self.model_class()._meta.pk
        if pk is None or pk.column is None:  # every registered model has a primary key column
            raise TypeError(f"{self.model} has no primary key column")
        return pk.column

    @property
    def pk_cast(self) -> str:
        return "uuid" if isinstance(self.model_class()._meta.pk, models.UUIDField) else "bigint"

    def lock_sql(self) -> str:
        """Lock rows of the tenant by id: parameters (tenant id, list of ids); returns the ids found."""
        return (
            f"SELECT {self.pk_column}::text FROM {self.table} WHERE tenant_id = %s"  # noqa: S608 - registry names
            f" AND {self.pk_column} = ANY(%s::{self.pk_cast}[]) FOR UPDATE"
        )

    def select_sql(self) -> str:
        """The record columns of every row of the tenant (add conditions after it with AND)."""
        where = f" AND ({self.where_sql})" if self.where_sql else ""
        # Every fragment comes from a registration in categories.py, never from input: values are
        # always query parameters.
        return (
            f"SELECT r.{self.pk_column}::text AS record_id, {self.clock} AS clock_at, "  # noqa: S608
            f"{self.contact_sql} AS contact_id, {self.source_sql} AS source_ref, "
            f"{self.actor_sql} AS actor_ref FROM {self.table} r {self.join_sql} "
            f"WHERE r.tenant_id = %(tenant)s AND {self.clock} IS NOT NULL{where}"
        )


# destroy(category, tenant_id, record_ids) -> destruction.Destroyed: the ids the database's statements
# returned (and the rows of other tables that went with them). Called inside the batch's transaction,
# after the records were locked and checked against holds and exceptions.
Destroyer = Callable[["Category", uuid.UUID, list[str]], "Destroyed"]
# archive(category, tenant_id, record_ids, active_holds) -> {category key: ids moved}: the records
# of the category and those of other categories that had to move with them (a message's portal
# copy, content and events). Same transaction rules as destroy; records moved along are checked
# against the holds here, by the archiver.
Archiver = Callable[["Category", uuid.UUID, list[str], Sequence[Any]], dict[str, list[str]]]


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    app: str
    description: str
    sources: tuple[Source, ...]
    default: DefaultPolicy
    hold_group: str = ""  # holds and exceptions on any category of a group cover the whole group
    destroy: Destroyer | None = None
    archive: Archiver | None = None
    # SQL over `r`: which records past their archive age can move now (a message waits while its
    # portal copy can still be opened); `%(as_of)s` is the moment the archive is judged at.
    archive_condition: str = ""
    # Why records of this category never move to the archive (required when `archive` is None).
    not_archivable: str = ""
    method: str = ""  # how destruction works, as printed on certificates
    # (category, clock expression over `r`): when that category is destroyed in the same run, its
    # destruction removes this category's records too, so planning leaves out the records whose
    # expression is past that category's cutoff (one pass instead of two over the same rows).
    subsumed_by: tuple[tuple[str, str], ...] = ()
    notes: str = ""
    order: int = 100
    allowed_actions: tuple[str, ...] = field(default=())

    @property
    def source(self) -> Source:
        return self.sources[0]

    @property
    def destroyable(self) -> bool:
        return self.destroy is not None

    @property
    def actions(self) -> tuple[str, ...]:
        if self.allowed_actions:
            return self.allowed_actions
        found = ["review"]
        if self.destroy is not None:
            found.insert(0, "destroy")
        if self.archive is not None:
            found.insert(-1, "archive")
        return tuple(found)

    @property
    def legal_minimum_days(self) -> int:
        """The floor no tenant policy may go below: rules that always apply (state rules that apply
        only to some records are shown with the policy; a tenant they bind writes them in its rows)."""
        years = [b.years for b in self.default.legal_basis if b.years and not b.applies]
        return round(max(years) * YEAR) if years else 0

    def available(self) -> bool:
        try:
            for source in self.sources:
                source.model_class()
        except LookupError:
            return False
        return True

    def group(self) -> tuple[str, ...]:
        if not self.hold_group:
            return (self.key,)
        return tuple(c.key for c in _categories.values() if c.hold_group == self.hold_group)


_categories: dict[str, Category] = {}


def register_category(category: Category) -> Category:
    if category.key in _categories and _categories[category.key] != category:
        raise ValueError(f"Retention category {category.key!r} is registered twice.")
    if category.destroy is not None and len(category.sources) != 1:
        raise ValueError(f"Destroyable category {category.key!r} must have exactly one source table.")
    if category.default.max_days is not None and category.default.max_days < category.default.min_days:
        raise ValueError(f"Default policy of {category.key!r} has max < min.")
    if (category.archive is None) == (not category.not_archivable):
        raise ValueError(
            f"Category {category.key!r} needs either an archiver or the reason it is never archived."
        )
    if category.archive is not None and len(category.sources) != 1:
        raise ValueError(f"Archivable category {category.key!r} must have exactly one source table.")
    _categories[category.key] = category
    return category


def _ensure_loaded() -> None:
    from . import categories  # noqa: F401 - registers every category on import


def all_categories() -> list[Category]:
    """Available categories, in display order."""
    _ensure_loaded()
    return sorted((c for c in _categories.values() if c.available()), key=lambda c: (c.order, c.key))


def category_get(key: str) -> Category:
    _ensure_loaded()
    category = _categories.get(key)
    if category is None or not category.available():
        raise KeyError(key)
    return category


def categories_for_model(model: type[models.Model] | models.Model) -> list[Category]:
    label = model._meta.label
    return [c for c in all_categories() if any(s.model == label for s in c.sources)]


def expand_groups(keys: Sequence[str]) -> set[str]:
    """The categories a hold naming `keys` covers (a named category brings its whole hold group)."""
    _ensure_loaded()
    expanded: set[str] = set()
    for key in keys:
        category = _categories.get(key)
        expanded.update(category.group() if category else (key,))
    return expanded

"""Consent evidence carried by import columns: which topic, from which source, on which date.

The import only reads and validates these columns into `ConsentEvidenceRow`s; the consent app
records them. Consent sits above contacts, so it registers its two calls here when it starts
(`ConsentBook`, consent/apps.py) and the import never imports it. The two functions at the bottom are
the whole interface between the two apps.
"""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from healthmail.actors import Actor

# Where the person originally gave consent (the import itself is the channel that carried it);
# the keys are consent.models.Source values.
SOURCES = {
    "web_form": "Web form",
    "paper": "Paper form",
    "verbal": "Verbal (recorded by staff)",
    "api": "Another system (API)",
    "import": "Imported list",
}
SOURCE_ALIASES = {
    "web": "web_form",
    "website": "web_form",
    "online": "web_form",
    "form": "web_form",
    "paper form": "paper",
    "phone": "verbal",
    "in person": "verbal",
}
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d")


@dataclass(frozen=True)
class ConsentEvidenceRow:
    """What one import row says about a consent given. `row_number` points back into the file."""

    topic: str
    source: str
    obtained_on: datetime.date
    job_id: uuid.UUID
    row_number: int


@dataclass(frozen=True)
class ConsentColumns:
    """The job's consent mapping (stored in ImportJob.options["consent"]): each of topic and source
    is a column or one value for every row; the date always comes from a column."""

    date_column: int
    topic_column: int | None = None
    topic_value: str = ""
    source_column: int | None = None
    source_value: str = ""

    def as_options(self) -> dict:
        return {
            "date_column": self.date_column,
            "topic_column": self.topic_column,
            "topic_value": self.topic_value,
            "source_column": self.source_column,
            "source_value": self.source_value,
        }

    @classmethod
    def from_options(cls, options: dict | None) -> ConsentColumns | None:
        return cls(**options) if options else None

    def used_columns(self) -> set[int]:
        return {c for c in (self.date_column, self.topic_column, self.source_column) if c is not None}


def source_key(text: str) -> str | None:
    key = " ".join(text.strip().casefold().replace("_", " ").split())
    key = SOURCE_ALIASES.get(key, key.replace(" ", "_"))
    return key if key in SOURCES else None


def parse_date(text: str) -> datetime.date | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.datetime.strptime(text.strip(), fmt).date()  # noqa: DTZ007 (a date, no time)
        except ValueError:
            continue
    return None


def row_evidence(
    columns: ConsentColumns,
    *,
    values: list[str],
    topics: set[str],
    job_id: uuid.UUID,
    row_number: int,
    today: datetime.date,
) -> tuple[ConsentEvidenceRow | None, list[tuple[int | None, str]]]:
    """Evidence from one row, or (column, message) errors. A row with an empty date carries no
    evidence (not every row must); a row with a date needs a valid topic and source."""
    date_text = values[columns.date_column].strip()
    if not date_text:
        return None, []
    errors: list[tuple[int | None, str]] = []
    obtained_on = parse_date(date_text)
    if obtained_on is None:
        errors.append((columns.date_column, "Not a date (use YYYY-MM-DD or MM/DD/YYYY)."))
    elif obtained_on > today:
        errors.append((columns.date_column, "A consent date cannot be in the future."))
    topic = columns.topic_value
    if columns.topic_column is not None:
        topic = values[columns.topic_column].strip().casefold()
        if topic not in topics:
            errors.append((columns.topic_column, "Unknown consent topic."))
    source = columns.source_value
    if columns.source_column is not None:
        source = source_key(values[columns.source_column]) or ""
        if not source:
            allowed = ", ".join(SOURCES)
            errors.append((columns.source_column, f"Unknown consent source (use one of: {allowed})."))
    if errors or obtained_on is None:  # no date: an error above
        return None, errors
    return ConsentEvidenceRow(topic, source, obtained_on, job_id, row_number), []


# --- The interface to the consent app: the only two calls the import makes into it -------------------


@dataclass(frozen=True)
class ConsentBook:
    """What the consent app lends the import: its topics, and the recording of opt-ins."""

    # topics(tenant=) -> {key: topic with a .name}, the system topics created on first use.
    topics: Callable[..., Mapping[str, Any]]
    # record(tenant=, actor=, rows=[(contact id, topic key, source, when)]) -> events recorded.
    record: Callable[..., int]


_books: list[ConsentBook] = []


def consent_book_register(book: ConsentBook) -> None:
    """Called once by the consent app when it starts."""
    _books[:] = [book]


def _book() -> ConsentBook:
    if not _books:
        raise ImproperlyConfigured("No consent book: the consent app registers it when it starts.")
    return _books[0]


def consent_topics(*, tenant) -> list[tuple[str, str]]:
    """(key, name) of the consent topics evidence can be imported for."""
    return [(key, topic.name) for key, topic in sorted(_book().topics(tenant=tenant).items())]


def consent_evidence_record(
    *, tenant, actor: Actor, contact_ids_with_evidence: list[tuple[uuid.UUID, ConsentEvidenceRow]]
) -> int:
    """Record the opt-ins in the consent history, in the batch's transaction (all or nothing).

    A date carries no time: consent counts from the start of that day in the tenant's time zone."""
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    rows = [
        (
            contact_id,
            row.topic,
            row.source,
            datetime.datetime.combine(row.obtained_on, datetime.time.min, zone),
        )
        for contact_id, row in contact_ids_with_evidence
    ]
    return _book().record(tenant=tenant, actor=actor, rows=rows)

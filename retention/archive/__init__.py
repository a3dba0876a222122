"""The archive: records past their category's archive age leave the live tables for ArchivedRecord,
with the same encryption (tenant data key for the snapshot, each content part under its own object
key, so disposal still crypto-shreds it) and the same access control. Held records never move.

- `moves`: what moves for each archivable category (and what a message takes along with it);
- `due`: finding due records and moving them in batches, honouring holds;
- `search`: search across live and archived records, audited retrieval.

Which categories are archivable, and why the others are not, is declared in categories.py.
"""

from .due import ARCHIVE_BATCH, archive_due
from .moves import archive_message_content, archive_messages, archive_portal_messages, archive_tracking_events
from .search import SEARCH_LIMIT, SearchFilter, SearchHit, archive_retrieve, archived_open, record_search

__all__ = [
    "ARCHIVE_BATCH",
    "SEARCH_LIMIT",
    "SearchFilter",
    "SearchHit",
    "archive_due",
    "archive_message_content",
    "archive_messages",
    "archive_portal_messages",
    "archive_retrieve",
    "archive_tracking_events",
    "archived_open",
    "record_search",
]

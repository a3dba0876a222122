"""Which contacts a write changed, told to whoever registered to hear it, in the write's transaction.

Every write path of contact data (the batch upsert behind the API, imports and the seed; tags, the
journey stage and fields set by automation; deletion) calls `contacts_changed` with the ids it
changed. Higher layers register handlers here (journeys' segment-join trigger), so this lower layer
never imports them. Handlers receive ids only, never values.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

Handler = Callable[[uuid.UUID, list[uuid.UUID]], None]
_handlers: list[Handler] = []


def register_change_handler(handler: Handler) -> None:
    if handler not in _handlers:
        _handlers.append(handler)


def contacts_changed(*, tenant_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]) -> None:
    if not contact_ids:
        return
    for handler in _handlers:
        handler(tenant_id, list(contact_ids))

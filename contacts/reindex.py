"""Recompute contacts' segmentation tokens after the rules deriving them changed.

Tokens are written by `contact_upsert_many` through `normalize.segmentation_columns`; a contact
written before a rule change (conditions gaining their ICD-10-CM category tokens) keeps its old
tokens until it is written again. `contact_tokens_reindex` walks a tenant's live contacts in
batches (keyset on the id, each batch its own transaction with the rows locked), recomputes the
clinical and demographic tokens and sensitive categories through that same function, and writes
only the rows whose stored columns differ. Only the clinical, demographic and (when the tenant has
segmentable custom fields) custom columns are read and decrypted: never identifiers.

Interrupting it loses nothing: a rerun recomputes the done rows, finds them equal and writes none.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from django.db import transaction

from audit import services as audit
from audit.models import AuditEvent
from healthmail.actors import Actor
from healthmail.crypto import access
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import bulk, normalize
from .models import Contact, CustomField

DEFAULT_BATCH = 500
RECOMPUTED = ("clinical_tokens", "demographic_tokens", "sensitive_categories")

Progress = Callable[[int, int], None]  # (rows done, total)


@dataclasses.dataclass
class ReindexResult:
    total: int = 0  # live contacts counted by the database at the start
    scanned: int = 0  # rows the batches read
    changed: int = 0  # rows the database reports updated


def contact_tokens_reindex(
    *, tenant: Tenant, actor: Actor, batch_size: int = DEFAULT_BATCH, progress: Progress | None = None
) -> ReindexResult:
    """Recompute the segmentation tokens of every live contact of the tenant; one audit event."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    result = ReindexResult()
    outcome = AuditEvent.Outcome.FAILURE
    try:
        with tenant_context(tenant):
            result.total = Contact.objects.filter(tenant=tenant, deleted_at__isnull=True).count()
            segmentable = set(
                CustomField.objects.filter(tenant=tenant, segmentable=True).values_list("key", flat=True)
            )
        tokens: dict[tuple[int, str, str], int] = {}

        after: uuid.UUID | None = None
        while True:
            # The index-key version written is read once per batch (a rotation may activate a new
            # one during a long run: a memo of the old version's tokens would write them after the
            # rotation's re-index has passed the rows); memoized per version.
            view = normalize.blind.versions(tenant)

            def token(tenant_, kind: str, value: str, view=view) -> int:
                key = (view.write, kind, value)
                if key not in tokens:
                    tokens[key] = normalize.blind.token(tenant_, kind, value, state=view)
                return tokens[key]

            scanned, changed, after = _reindex_batch(tenant, after, batch_size, segmentable, token)
            if not scanned:
                break
            result.scanned += scanned
            result.changed += changed
            if progress:
                progress(result.scanned, result.total)
        outcome = AuditEvent.Outcome.SUCCESS
    finally:
        audit.record(
            actor=actor,
            action="contacts.reindex_tokens",
            target=("contacts.contact", ""),
            tenant=tenant,
            outcome=outcome,
            details={"columns": list(RECOMPUTED), **dataclasses.asdict(result)},
        )
    return result


def _reindex_batch(
    tenant: Tenant,
    after: uuid.UUID | None,
    batch_size: int,
    segmentable: set[str],
    token: Callable,
) -> tuple[int, int, uuid.UUID | None]:
    read = ["clinical", "demographics"] + (["custom_fields"] if segmentable else [])
    grant = access.Grant("contacts.contact", frozenset(read), None)
    with tenant_context(tenant), transaction.atomic(), access.granted(grant):
        rows = Contact.objects.filter(tenant=tenant, deleted_at__isnull=True)
        if after is not None:
            rows = rows.filter(pk__gt=after)
        # Locked: an upsert of the same contact waits, so tokens never come from a stale read.
        batch = list(rows.order_by("pk").only("pk", *read, *RECOMPUTED).select_for_update()[:batch_size])
        ids, changes = [], []
        for contact in batch:
            columns = normalize.segmentation_columns(
                tenant,
                demographics=contact.demographics,
                clinical=contact.clinical,
                custom=contact.custom_fields if segmentable else None,
                segmentable_custom=segmentable,
                token=token,
            )
            changed = {name: value for name, value in columns.items() if getattr(contact, name) != value}
            if changed:
                ids.append(contact.pk)
                changes.append(changed)
        updated = bulk.contacts_update(tenant_id=tenant.pk, ids=ids, changes=changes)
    return len(batch), updated, (batch[-1].pk if batch else after)

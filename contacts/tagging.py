"""Tags and journey stage set by automation (a journey's update step), many contacts at once.

Tags are stored only as keyed tokens (contacts/normalize.py), so adding one is adding its token;
the counts are the rows the database changed, and one audit event names every contact touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import nullcontext

from django.db import transaction

from audit import services as audit
from healthmail.actors import Actor
from healthmail.crypto import blind
from healthmail.errors import ApplicationError
from healthmail.tenants.context import current_tenant_id, tenant_context
from healthmail.tenants.models import Tenant

from .bulk import _fetch_column
from .changes import contacts_changed
from .models import Contact, JourneyStage
from .normalize import TAG_TOKEN_KIND

# The ids travel as one binary array (contacts/bulk.py): a journey's tag step names a thousand.
# While an index-key rotation runs (blind.py: chained kinds) a tag has two tokens: a contact has the
# tag when it holds either. Adding one adds both to the tokens (one of them matches what the row
# holds or will hold once swapped; the other is inert) and the newer to the row's next tokens, if it
# has them (filled in, not yet swapped); removing one removes both from both.
_ADD = """
UPDATE contacts_contact SET tag_tokens = tag_tokens || ARRAY(
         SELECT t FROM unnest(%s::bigint[]) AS t WHERE NOT t = ANY(tag_tokens)),
       tag_tokens_next = CASE WHEN tag_tokens_next IS NULL OR %s::bigint IS NULL THEN tag_tokens_next
                              WHEN %s::bigint = ANY(tag_tokens_next) THEN tag_tokens_next
                              ELSE array_append(tag_tokens_next, %s::bigint) END,
       updated_at = now()
WHERE tenant_id = %s AND id = ANY(%b::uuid[]) AND deleted_at IS NULL AND NOT (tag_tokens && %s::bigint[])
RETURNING id
"""
_REMOVE = """
UPDATE contacts_contact
   SET tag_tokens = ARRAY(SELECT t FROM unnest(tag_tokens) AS t WHERE NOT t = ANY(%s::bigint[])),
       tag_tokens_next = CASE WHEN tag_tokens_next IS NULL THEN NULL ELSE
         ARRAY(SELECT t FROM unnest(tag_tokens_next) AS t WHERE NOT t = ANY(%s::bigint[])) END,
       updated_at = now()
WHERE tenant_id = %s AND id = ANY(%b::uuid[]) AND deleted_at IS NULL AND tag_tokens && %s::bigint[]
RETURNING id
"""


def tag_token(tenant: Tenant, tag: str) -> int:
    return blind.token(tenant, TAG_TOKEN_KIND, tag)


def tag_tokens(tenant: Tenant, tag: str) -> list[int]:
    """Every token a contact having this tag may hold (two while an index-key rotation runs)."""
    return blind.token_lookup(tenant, TAG_TOKEN_KIND, tag)


@transaction.atomic
def contacts_tag(
    *, tenant: Tenant, actor: Actor, contact_ids: Sequence[uuid.UUID], tag: str, remove: bool = False
) -> list[uuid.UUID]:
    """Add (or remove) one tag on the contacts; returns the contacts whose tags changed."""
    if not tag:
        raise ApplicationError("Name the tag.", code="tag_required")
    tokens = tag_tokens(tenant, tag)
    # While a rotation runs, rows not yet swapped also get the newest token among their next ones.
    following = tokens[0] if len(tokens) > 1 else None
    # A journey's tag step runs inside its tenant's context already: entering it again costs a
    # savepoint and three statements per batch.
    scope = nullcontext() if current_tenant_id() == tenant.pk else tenant_context(tenant)
    with scope:
        if remove:
            params = [tokens, tokens, tenant.pk, list(contact_ids), tokens]
        else:
            params = [tokens, following, following, following, tenant.pk, list(contact_ids), tokens]
        changed = _fetch_column(_REMOVE if remove else _ADD, params)
        if changed:
            audit.record(
                actor=actor,
                action="contacts.tag_remove" if remove else "contacts.tag_add",
                tenant=tenant,
                details={"changed": len(changed)},
                contacts=changed,
            )
            contacts_changed(tenant_id=tenant.pk, contact_ids=changed)
    return changed


@transaction.atomic
def contacts_journey_stage_set(
    *, tenant: Tenant, actor: Actor, contact_ids: Sequence[uuid.UUID], stage: str
) -> int:
    """Set the journey stage of the contacts; returns how many rows changed."""
    if stage not in JourneyStage.values:
        raise ApplicationError("Unknown journey stage.", code="journey_stage")
    with tenant_context(tenant):
        changed = list(
            Contact.objects.filter(tenant=tenant, pk__in=list(contact_ids), deleted_at__isnull=True)
            .exclude(journey_stage=stage)
            .values_list("pk", flat=True)
        )
        updated = Contact.objects.filter(tenant=tenant, pk__in=changed).update(journey_stage=stage)
        if updated:
            audit.record(
                actor=actor,
                action="contacts.journey_stage_set",
                tenant=tenant,
                details={"stage": stage, "changed": updated},
                contacts=changed,
            )
            contacts_changed(tenant_id=tenant.pk, contact_ids=changed)
    return updated


SETTABLE_FIELDS = ("language",)  # plaintext columns automation may set (journey_stage has its own)


@transaction.atomic
def contacts_field_set(
    *, tenant: Tenant, actor: Actor, contact_ids: Sequence[uuid.UUID], field: str, value: str
) -> int:
    """Set one plaintext field of the contacts; returns how many rows changed."""
    if field not in SETTABLE_FIELDS:
        raise ApplicationError("This field cannot be set by automation.", code="field_not_settable")
    with tenant_context(tenant):
        changed = list(
            Contact.objects.filter(tenant=tenant, pk__in=list(contact_ids), deleted_at__isnull=True)
            .exclude(**{field: value})
            .values_list("pk", flat=True)
        )
        updated = Contact.objects.filter(tenant=tenant, pk__in=changed).update(**{field: value})
        if updated:
            audit.record(
                actor=actor,
                action="contacts.field_set",
                tenant=tenant,
                details={"field": field, "changed": updated},
                contacts=changed,
            )
            contacts_changed(tenant_id=tenant.pk, contact_ids=changed)
    return updated

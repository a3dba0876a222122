"""API keys: random, prefixed, stored hashed, shown once, scoped, expiring, revocable.

Format: `hm_<12 hex prefix>_<43 url-safe secret>`. The prefix finds the row (a row-level security
policy lets exactly that row be read before the tenant is known); the secret is compared by hash.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.outages import shared_or_local
from healthmail.tenants.context import db_setting, tenant_context
from healthmail.tenants.models import Tenant

from .models import ApiKey

KEY_PREFIX = "hm_"
PREFIX_LENGTH = 12

SCOPES: dict[str, str] = {
    "contacts:read": "Read contacts (masked unless contacts:phi)",
    "contacts:write": "Create, update and delete contacts",
    "contacts:phi": "Read unmasked PHI fields of contacts",
    "consent:read": "Read a contact's authorizations and where they stand (dates are PHI; audited)",
    "consent:write": "Record consent and authorizations",
    "messages:send": "Send transactional messages",
    "messages:read": "Read message status and delivery evidence",
    "events:write": "Post engagement and named events (named events start and wake journeys)",
    "journeys:read": "List and read journeys; read a contact's journey positions (audited)",
    "journeys:write": "Create draft journeys; enrol contacts in journeys and remove them",
    "segments:read": "Count segments",
    "segments:write": "Create and update segments",
    "webhooks:manage": "Manage webhook endpoints",
    "campaigns:read": "Read templates and campaigns (no audience counts)",
    "templates:write": "Create templates and save their languages (campaigns still need approval)",
    "campaigns:write": "Create and edit campaigns, submit and withdraw them, schedule and unschedule, "
    "pause, resume and cancel them (a person other than the key's creator approves)",
    "campaigns:report": "Read campaign reports (counts through the disclosure policy)",
}


class ApiKeyRejected(Exception):
    """The presented key is unknown, malformed, revoked or expired. The message is safe to show."""


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _parse(presented: str) -> tuple[str, str]:
    if not presented.startswith(KEY_PREFIX) or len(presented) < len(KEY_PREFIX) + PREFIX_LENGTH + 2:
        raise ApiKeyRejected("Malformed API key.")
    prefix = presented[len(KEY_PREFIX) : len(KEY_PREFIX) + PREFIX_LENGTH]
    separator = presented[len(KEY_PREFIX) + PREFIX_LENGTH]
    if separator != "_" or not all(c in "0123456789abcdef" for c in prefix):
        raise ApiKeyRejected("Malformed API key.")
    return prefix, presented[len(KEY_PREFIX) + PREFIX_LENGTH + 1 :]


@transaction.atomic
def api_key_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    scopes: list[str],
    expires_at: datetime.datetime | None = None,
    smart_client: Any = None,
) -> IssuedKey:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApplicationError(f"Unknown scopes: {', '.join(unknown)}.", code="unknown_scope")
    if not scopes:
        raise ApplicationError("Choose at least one scope.", code="scopes_required")
    if not name.strip():
        raise ApplicationError("Give the key a name.", code="name_required")
    if expires_at and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", code="expiry_past")
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    with tenant_context(tenant):
        api_key = ApiKey.objects.create(
            tenant=tenant,
            name=name.strip(),
            prefix=prefix,
            secret_hash=_hash(secret),
            scopes=sorted(set(scopes)),
            created_by=actor.user,
            expires_at=expires_at,
            smart_client=smart_client,
        )
        audit.record(
            actor=actor,
            action="api_key.create",
            target=api_key,
            tenant=tenant,
            details={"prefix": prefix, "scopes": api_key.scopes},
        )
    return IssuedKey(api_key, f"{KEY_PREFIX}{prefix}_{secret}")


@transaction.atomic
def api_key_revoke(*, actor: Actor, tenant: Tenant, api_key: ApiKey) -> ApiKey:
    with tenant_context(tenant):
        updated = (
            ApiKey.objects.for_tenant(tenant)
            .filter(pk=api_key.pk, revoked_at__isnull=True)
            .update(revoked_at=timezone.now())
        )
        if updated != 1:
            raise ApplicationError("This key is already revoked.", code="already_revoked")
        audit.record(
            actor=actor,
            action="api_key.revoke",
            target=api_key,
            tenant=tenant,
            details={"prefix": api_key.prefix},
        )
        api_key.refresh_from_db()  # inside the context: row-level security hides the row outside it
    return api_key


class ApiKeyThrottled(ApiKeyRejected):
    """Too many rejected keys from one address: guessing is slowed down before any lookup."""


def failure_counter(ip_address: str | None) -> str:
    """The cache key counting an address's rejected keys (in Redis, or locally while it is down)."""
    return f"api-key-failures:{ip_address}"


def api_key_authenticate(presented: str, *, ip_address: str | None) -> ApiKey:
    """Check a presented key; an address that keeps presenting bad keys is refused for a while."""
    counter = failure_counter(ip_address)
    # Counted in Redis, or in this process while Redis is down (healthmail/outages.py).
    if ip_address and (shared_or_local(lambda c: c.get(counter)) or 0) >= settings.API_KEY_FAILURE_LIMIT:
        raise ApiKeyThrottled("Too many invalid API keys from this address; wait and try again.")
    try:
        return _authenticate(presented, ip_address=ip_address)
    except ApiKeyRejected:
        if ip_address:
            shared_or_local(lambda c: count_failure(c, counter))
        raise


def count_failure(store: Any, counter: str) -> None:
    """One more failure in a window counter (the SMART token endpoint counts its own the same way)."""
    store.add(counter, 0, timeout=settings.API_KEY_FAILURE_WINDOW_SECONDS)
    try:
        store.incr(counter)
    except ValueError:  # the window closed in between
        store.set(counter, 1, timeout=settings.API_KEY_FAILURE_WINDOW_SECONDS)


def _authenticate(presented: str, *, ip_address: str | None) -> ApiKey:
    """Find and check a presented key. Every refusal is audited (by prefix, never the secret)."""
    try:
        prefix, secret = _parse(presented)
    except ApiKeyRejected:
        audit.record(actor=Actor.anonymous(), action="api_key.use", outcome="denied", reason="malformed key")
        raise
    with db_setting("app.api_key_prefix", prefix):
        api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if api_key is None:
        audit.record(
            actor=Actor("api_key", prefix), action="api_key.use", outcome="denied", reason="unknown key"
        )
        raise ApiKeyRejected("Invalid API key.")
    if not hmac.compare_digest(api_key.secret_hash, _hash(secret)):
        # Same answer as an unknown key; the owning tenant's trail shows someone tried its prefix.
        audit.record(
            actor=Actor.for_api_key(api_key),
            action="api_key.use",
            outcome="denied",
            reason="wrong secret",
            tenant=api_key.tenant,
            target=api_key,
        )
        raise ApiKeyRejected("Invalid API key.")
    refusal = ""
    if api_key.revoked_at is not None:
        refusal = "This API key was revoked."
    elif api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        refusal = "This API key has expired."
    elif not api_key.tenant.is_active:
        refusal = "The organization of this API key is suspended."
    if refusal:
        audit.record(
            actor=Actor.for_api_key(api_key),
            action="api_key.use",
            outcome="denied",
            reason=refusal,
            tenant=api_key.tenant,
            target=api_key,
        )
        raise ApiKeyRejected(refusal)
    # Recording each use would double the write load of a busy integration; a minute's grain is enough.
    # The tenant context only for that write: opening one costs a savepoint and three queries.
    since = timezone.now() - datetime.timedelta(minutes=1)
    stale = api_key.last_used_at is None or api_key.last_used_at < since
    if stale or api_key.last_used_ip != ip_address:
        with tenant_context(api_key.tenant):
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now(), last_used_ip=ip_address)
            audit.record(
                actor=Actor.for_api_key(api_key),
                action="api_key.use",
                target=api_key,
                tenant=api_key.tenant,
                details={"new_network": api_key.last_used_ip != ip_address},
            )
    return api_key

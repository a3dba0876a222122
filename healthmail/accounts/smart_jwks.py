"""The public keys of SMART clients: a JWK Set given inline, or fetched from the client's `jwks_url`
(the SMART guide's preferred form: the client rotates keys on its own server).

A URL is fetched through the SSRF guard the webhooks use (healthmail/egress: public addresses only,
the checked address dialled, no redirect), https only, at most SMART_JWKS_MAX_BYTES within
SMART_JWKS_TIMEOUT_SECONDS. The keys are kept on the client row as a cache: fetched again once
SMART_JWKS_CACHE_SECONDS have passed, or early when an assertion names a `kid` the cache lacks (the
client rotated). Fetches are at most one per SMART_JWKS_REFETCH_SECONDS per client, whatever the
outcome, so assertions with made-up kids cannot make us hammer anyone's server. A stale cache that
cannot be refreshed verifies nothing (fail closed: a key the client removed must stop working).

A beat task (tasks.smart_jwks_refresh, every SMART_JWKS_REFRESH_SECONDS) fetches each URL again once
its cache is within two such periods of expiring, so a token request finds fresh keys and does not
wait on the client's server, and a rotation on that server reaches us within the cache time even
when no assertion names the new kid. The background fetch claims the client (jwks_attempted_at) and
runs outside any transaction; a failure keeps the cached keys until they expire, then the token path
fails closed as before.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.egress.http import FetchFailed, fetch
from healthmail.egress.ssrf import Resolve, UnsafeTarget, private_allowed, resolve_target, system_resolve
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import SmartClient

logger = logging.getLogger("healthmail.smart")

ACCEPT = "application/jwk-set+json, application/json"


class JwksUnavailable(ApplicationError):
    """The client's keys could not be fetched (or the cache is stale and a fetch is not due yet)."""


def public_key_set(jwks: object) -> dict[str, Any]:
    """The JWK Set, checked: public RSA (≥ 2048 bits) or EC P-384 keys, each with a distinct kid."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ApplicationError('Give a JWK Set: {"keys": [...]}, with at least one key.', code="jwks_invalid")
    kids = [key.get("kid") if isinstance(key, dict) else None for key in jwks["keys"]]
    if not all(isinstance(kid, str) and kid for kid in kids) or len(set(kids)) != len(kids):
        raise ApplicationError("Every key needs its own `kid`.", code="jwks_invalid")
    if any("d" in key for key in jwks["keys"]):
        raise ApplicationError(
            "Register public keys only: a key holds a private part (`d`).", code="jwks_private"
        )
    try:
        key_set = KeySet.import_key_set(jwks)  # type: ignore[arg-type]  # checked by joserfc itself
    except (JoseError, ValueError, TypeError) as error:
        raise ApplicationError(f"The JWK Set cannot be read ({error}).", code="jwks_invalid") from None
    for key in key_set.keys:
        raw = key.raw_value
        strong_rsa = isinstance(raw, rsa.RSAPublicKey) and raw.key_size >= 2048
        p384 = key.key_type == "EC" and key.as_dict().get("crv") == "P-384"
        if not (strong_rsa or p384):
            raise ApplicationError(
                "Keys must be RSA of 2048 bits or more (RS384) or EC P-384 (ES384).", code="jwks_weak"
            )
    return dict(key_set.as_dict(private=False))


def jwks_fetch(url: str, *, resolve: Resolve = system_resolve) -> dict[str, Any]:
    """The checked public JWK Set at `url`; ApplicationError (a sentence, no answer content) if not."""
    if urlsplit(url).scheme != "https" and not private_allowed():
        raise ApplicationError("The JWK Set URL must use https.", code="jwks_url_refused")
    try:
        target = resolve_target(url, resolve=resolve)
    except UnsafeTarget as unsafe:
        raise ApplicationError(
            f"The JWK Set URL is refused: {unsafe.reason}.", code="jwks_url_refused"
        ) from None
    try:
        fetched = fetch(
            target,
            timeout=settings.SMART_JWKS_TIMEOUT_SECONDS,
            max_bytes=settings.SMART_JWKS_MAX_BYTES,
            accept=ACCEPT,
            ca_file=settings.WEBHOOK_CA_FILE,
        )
    except FetchFailed as failure:
        raise JwksUnavailable(
            f"The JWK Set could not be fetched: {failure}.", code="jwks_unreachable"
        ) from None
    try:
        document = json.loads(fetched.body)
    except (ValueError, UnicodeError):
        raise ApplicationError("The JWK Set URL did not answer JSON.", code="jwks_invalid") from None
    return public_key_set(document)


def _due(moment: datetime.datetime | None, now: datetime.datetime, seconds: int) -> bool:
    return moment is None or now - moment >= datetime.timedelta(seconds=seconds)


def client_key_set(client: SmartClient, *, kid: str, now: datetime.datetime) -> KeySet:
    """The keys to verify `client`'s assertion (which names `kid`) with, refreshed as the module says."""
    if client.jwks_url:
        _refresh(client, kid=kid, now=now)
    return KeySet.import_key_set(client.jwks)


def _refresh(client: SmartClient, *, kid: str, now: datetime.datetime) -> None:
    stale = _due(client.jwks_fetched_at, now, settings.SMART_JWKS_CACHE_SECONDS)
    known = kid in {key.get("kid") for key in client.jwks.get("keys", [])}
    if not stale and known:
        return
    if not _due(client.jwks_attempted_at, now, settings.SMART_JWKS_REFETCH_SECONDS):
        if stale:
            raise JwksUnavailable(
                "The client's keys are out of date and were fetched too recently to try again.",
                code="jwks_unreachable",
            )
        return  # an unknown kid, and a fetch too recent: verification fails with the cached keys
    rows = SmartClient.objects.filter(pk=client.pk)
    rows.update(jwks_attempted_at=now)
    client.jwks_attempted_at = now
    try:
        keys = jwks_fetch(client.jwks_url)
    except ApplicationError:
        if stale:
            raise
        return
    rows.update(jwks=keys, jwks_fetched_at=now)
    client.jwks, client.jwks_fetched_at = keys, now


# --- The background refresh (beat) ------------------------------------------------------------------


@dataclass
class RefreshSummary:
    refreshed: int = 0  # fetched, keys unchanged
    rotated: int = 0  # fetched, the set changed (recorded in the audit trail)
    failed: int = 0  # not fetched: the cached keys stay until they expire


def _refresh_ahead_seconds() -> int:
    """How old a cache may grow before the beat fetches it again: two beat periods before expiry."""
    return max(int(settings.SMART_JWKS_CACHE_SECONDS) - 2 * int(settings.SMART_JWKS_REFRESH_SECONDS), 0)


def _due_clients(tenant_id: uuid.UUID, now: datetime.datetime) -> list[tuple[Any, Any]]:
    fetched_before = now - datetime.timedelta(seconds=_refresh_ahead_seconds())
    attempted_before = now - datetime.timedelta(seconds=settings.SMART_JWKS_REFETCH_SECONDS)
    with tenant_context(tenant_id):
        return list(
            SmartClient.objects.for_tenant(tenant_id)
            .filter(revoked_at__isnull=True)
            .exclude(jwks_url="")
            .filter(Q(jwks_fetched_at__isnull=True) | Q(jwks_fetched_at__lte=fetched_before))
            .filter(Q(jwks_attempted_at__isnull=True) | Q(jwks_attempted_at__lte=attempted_before))
            .values_list("pk", "jwks_attempted_at")
        )


def _claim(
    tenant_id: uuid.UUID, client_pk: uuid.UUID, attempted_at: datetime.datetime | None, now: datetime.datetime
) -> SmartClient | None:
    """Compare-and-set on jwks_attempted_at: one fetch per client per interval, whoever asks (another
    beat run, a token request). Committed before the fetch: no row lock is held on the network."""
    with tenant_context(tenant_id):
        claimed = (
            SmartClient.objects.for_tenant(tenant_id)
            .filter(pk=client_pk, jwks_attempted_at=attempted_at)
            .update(jwks_attempted_at=now)
        )
        return SmartClient.objects.for_tenant(tenant_id).get(pk=client_pk) if claimed else None


def _kids(jwks: dict[str, Any]) -> list[str]:
    return sorted(key.get("kid", "") for key in jwks.get("keys", []))


def _refresh_one(
    tenant_id: uuid.UUID, client: SmartClient, now: datetime.datetime, summary: RefreshSummary
) -> None:
    try:
        keys = jwks_fetch(client.jwks_url)
    except ApplicationError as error:
        summary.failed += 1
        logger.warning("smart.jwks_refresh_failed", extra={"client_id": client.client_id, "code": error.code})
        return
    before, after = _kids(client.jwks), _kids(keys)
    with tenant_context(tenant_id):
        SmartClient.objects.for_tenant(tenant_id).filter(pk=client.pk).update(jwks=keys, jwks_fetched_at=now)
        if before == after and keys == client.jwks:
            summary.refreshed += 1
            return
        summary.rotated += 1
        audit.record(
            actor=Actor.system("smart_jwks_refresh"),
            action="smart.jwks_rotated",
            target=client,
            tenant=tenant_id,
            details={"kids_before": before, "kids_after": after},
        )


def jwks_refresh_due(*, now: datetime.datetime | None = None) -> RefreshSummary:
    """Fetch again every registered JWK Set URL whose cache is close to expiring (tenant by tenant:
    row-level security shows no other way). Safe to run twice at once: each client is claimed."""
    now = now or timezone.now()
    summary = RefreshSummary()
    for tenant_id in Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("pk", flat=True):
        for client_pk, attempted_at in _due_clients(tenant_id, now):
            client = _claim(tenant_id, client_pk, attempted_at, now)
            if client is not None:
                _refresh_one(tenant_id, client, now, summary)
    return summary

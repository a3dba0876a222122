"""SMART Backend Services (HL7 SMART App Launch 2.x, "Backend Services"): a registered system signs a
short JWT with one of its keys (private_key_jwt, RFC 7523) and receives a short-lived access token.

The access token is an API key of its own (`ApiKey.smart_client`, expiring after
SMART_ACCESS_TOKEN_SECONDS), so the FHIR endpoints and the REST API check it exactly like a static
key: same tenant context, same scopes, same audit, same revocation. Signatures are checked by
joserfc; only RS384 and ES384 are accepted, as the SMART guide requires.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from joserfc import jws, jwt
from joserfc.errors import JoseError

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.outages import shared_or_local
from healthmail.tenants.context import db_setting, tenant_context
from healthmail.tenants.models import Tenant

from .api_keys import SCOPES, api_key_create, count_failure
from .models import ApiKey, SmartAssertionUse, SmartClient
from .smart_jwks import client_key_set, jwks_fetch, public_key_set

ALGORITHMS = ["RS384", "ES384"]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The SMART guide: the assertion's `exp` is no more than five minutes in the future.
ASSERTION_MAX_SECONDS = 300
CLOCK_SKEW_SECONDS = 30
CLIENT_ID_PREFIX = "smart_"
MAX_JWKS_URL_LENGTH = 2000

# SMART resource → permission letter (v2: c r u d s) → the scopes of ours it needs.
# Reading a Patient in FHIR means reading the person, so `r`/`s` on Patient carry contacts:phi.
RESOURCE_SCOPES: dict[str, dict[str, tuple[str, ...]]] = {
    "Patient": {
        "c": ("contacts:write",),
        "u": ("contacts:write",),
        "r": ("contacts:read", "contacts:phi"),
        "s": ("contacts:read", "contacts:phi"),
    },
    "CommunicationRequest": {"c": ("messages:send",), "r": ("messages:read",), "s": ("messages:read",)},
    "Communication": {"r": ("messages:read",), "s": ("messages:read",)},
    "Consent": {
        "c": ("consent:write",),
        "u": ("consent:write",),
        "r": ("consent:read",),
        "s": ("consent:read",),
    },
}
# Our scopes some SMART scope maps to: what a client may be registered for (any other could never be granted).
SMART_SCOPE_CHOICES = sorted(
    {scope for letters in RESOURCE_SCOPES.values() for need in letters.values() for scope in need}
)
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"system/(?P<resource>\*|[A-Z][A-Za-z]+)\.(?P<permissions>read|write|\*|c?r?u?d?s?)")


class SmartRefused(Exception):
    """An OAuth error answer (RFC 6749 §5.2): `error` is the code, the message is safe to show."""

    def __init__(self, error: str, description: str, *, status: int = 400):
        super().__init__(description)
        self.error = error
        self.status = status


def smart_scope_needs(scope: str) -> set[str]:
    """The scopes of ours a SMART system scope needs, e.g. system/Patient.rs → contacts:read, :phi."""
    match = _SCOPE.fullmatch(scope)
    if match is None or not match["permissions"]:
        raise SmartRefused("invalid_scope", f"“{scope[:80]}” is not a SMART system scope we know.")
    resources = list(RESOURCE_SCOPES) if match["resource"] == "*" else [match["resource"]]
    if resources[0] not in RESOURCE_SCOPES:
        raise SmartRefused("invalid_scope", f"No FHIR resource {resources[0]} is served here.")
    letters = _V1_PERMISSIONS.get(match["permissions"], match["permissions"])
    needed: set[str] = set()
    for resource in resources:
        for letter in letters:
            needed.update(RESOURCE_SCOPES[resource].get(letter, ()))
    if not needed:
        raise SmartRefused("invalid_scope", f"“{scope}” grants nothing this server offers.")
    return needed


# --- registration ------------------------------------------------------------------------------------
@transaction.atomic
def smart_client_register(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    scopes: list[str],
    jwks: dict[str, Any] | None = None,
    jwks_url: str = "",
) -> SmartClient:
    """Register a backend system with its public keys (a JWK Set, or the URL it is published at,
    fetched now and kept fresh: smart_jwks.py) and the most its tokens may carry."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApplicationError(f"Unknown scopes: {', '.join(unknown)}.", code="unknown_scope")
    if not scopes:
        raise ApplicationError("Choose at least one scope.", code="scopes_required")
    if not name.strip():
        raise ApplicationError("Give the client a name.", code="name_required")
    if (jwks is None) == (not jwks_url):
        raise ApplicationError("Give the JWK Set or its URL (one of them).", code="jwks_invalid")
    if len(jwks_url) > MAX_JWKS_URL_LENGTH:
        raise ApplicationError("The JWK Set URL is too long.", code="jwks_url_refused")
    public = jwks_fetch(jwks_url) if jwks_url else public_key_set(jwks)
    now = timezone.now()
    with tenant_context(tenant):
        client = SmartClient.objects.create(
            tenant=tenant,
            client_id=f"{CLIENT_ID_PREFIX}{secrets.token_hex(12)}",
            name=name.strip()[:100],
            jwks=public,
            jwks_url=jwks_url,
            jwks_fetched_at=now if jwks_url else None,
            jwks_attempted_at=now if jwks_url else None,
            scopes=sorted(set(scopes)),
            created_by=actor.user,
        )
        audit.record(
            actor=actor,
            action="smart_client.register",
            target=client,
            tenant=tenant,
            details={
                "client_id": client.client_id,
                "scopes": client.scopes,
                "kids": [k["kid"] for k in public["keys"]],
                "jwks_url": bool(jwks_url),
            },
        )
    return client


@transaction.atomic
def smart_client_revoke(*, actor: Actor, tenant: Tenant, client: SmartClient) -> int:
    """Revoke the client and every access token it still holds; returns how many tokens ended."""
    now = timezone.now()
    with tenant_context(tenant):
        updated = (
            SmartClient.objects.for_tenant(tenant)
            .filter(pk=client.pk, revoked_at__isnull=True)
            .update(revoked_at=now)
        )
        if updated != 1:
            raise ApplicationError("This client is already revoked.", code="already_revoked")
        ended = (
            ApiKey.objects.for_tenant(tenant)
            .filter(smart_client=client, revoked_at__isnull=True)
            .update(revoked_at=now)
        )
        audit.record(
            actor=actor,
            action="smart_client.revoke",
            target=client,
            tenant=tenant,
            details={"client_id": client.client_id, "tokens_revoked": ended},
        )
    return ended


# --- the token endpoint ------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before the signature is checked: only to find the client and its key."""
    try:
        compact = jws.extract_compact(assertion.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError):
        raise SmartRefused(
            "invalid_client", "The client assertion is not a compact JWS.", status=401
        ) from None
    header = compact.headers()
    if header.get("alg") not in ALGORITHMS:
        raise SmartRefused(
            "invalid_client", "The client assertion must be signed with RS384 or ES384.", status=401
        )
    if not isinstance(header.get("kid"), str) or not isinstance(claims, dict):
        raise SmartRefused("invalid_client", "The client assertion must name its key (`kid`).", status=401)
    return header, claims


def _client(client_id: object) -> SmartClient:
    if not isinstance(client_id, str) or not client_id.startswith(CLIENT_ID_PREFIX) or len(client_id) > 64:
        raise SmartRefused("invalid_client", "Unknown client.", status=401)
    with db_setting("app.smart_client_id", client_id):
        client = SmartClient.objects.select_related("tenant").filter(client_id=client_id).first()
    if client is None:
        audit.record(
            actor=Actor("smart_client", client_id),
            action="smart.token",
            outcome="denied",
            reason="unknown client",
        )
        raise SmartRefused("invalid_client", "Unknown client.", status=401)
    return client


def _check_claims(
    claims: dict[str, Any], *, client: SmartClient, audience: str
) -> tuple[str, datetime.datetime]:
    if claims.get("sub") != client.client_id:
        raise SmartRefused("invalid_client", "`iss` and `sub` must both be the client_id.", status=401)
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise SmartRefused("invalid_client", f"`aud` must be the token endpoint, {audience}.", status=401)
    exp, now = claims.get("exp"), time.time()
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise SmartRefused("invalid_client", "`exp` must be a number of seconds.", status=401)
    if exp <= now - CLOCK_SKEW_SECONDS:
        raise SmartRefused("invalid_client", "The client assertion has expired.", status=401)
    if exp > now + ASSERTION_MAX_SECONDS + CLOCK_SKEW_SECONDS:
        raise SmartRefused("invalid_client", "`exp` may be at most five minutes in the future.", status=401)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 255:
        raise SmartRefused("invalid_client", "`jti` must be a unique string (at most 255).", status=401)
    return jti, datetime.datetime.fromtimestamp(exp, tz=datetime.UTC)


def _spend(client: SmartClient, jti: str, expires_at: datetime.datetime) -> None:
    """Record the jti; a second use of it (even by a racing request) is refused by the constraint."""
    try:
        with transaction.atomic():
            SmartAssertionUse.objects.create(
                tenant=client.tenant, client=client, jti=jti, expires_at=expires_at
            )
    except IntegrityError:
        raise SmartRefused(
            "invalid_client", "This client assertion was already used (`jti`).", status=401
        ) from None
    # Housekeeping: a used jti matters only until its assertion expires.
    SmartAssertionUse.objects.for_tenant(client.tenant).filter(
        client=client, expires_at__lt=timezone.now() - datetime.timedelta(seconds=CLOCK_SKEW_SECONDS)
    ).delete()


def _grant(client: SmartClient, requested: str) -> tuple[list[str], list[str]]:
    """(SMART scopes granted, our scopes they carry): each requested scope the client may hold."""
    wanted = requested.split()
    if not wanted:
        raise SmartRefused("invalid_scope", "Ask for at least one scope, e.g. system/Patient.rs.")
    granted, ours = [], set()
    for scope in dict.fromkeys(wanted):
        needs = smart_scope_needs(scope)
        if needs <= set(client.scopes):
            granted.append(scope)
            ours |= needs
    if not granted:
        raise SmartRefused("invalid_scope", "This client is registered for none of the scopes asked for.")
    return granted, sorted(ours)


def smart_token_issue(
    *, grant_type: str, assertion_type: str, assertion: str, scope: str, audience: str, ip_address: str | None
) -> IssuedToken:
    """Check a client-credentials request with its signed assertion; issue a short-lived token. An
    address that keeps presenting assertions that fail is refused for a while before any check
    (the same limit and window as bad API keys)."""
    counter = f"smart-token-failures:{ip_address}"
    if ip_address and (shared_or_local(lambda c: c.get(counter)) or 0) >= settings.API_KEY_FAILURE_LIMIT:
        raise SmartRefused(
            "invalid_client", "Too many failed client assertions from this address; wait.", status=429
        )
    try:
        return _token_issue(
            grant_type=grant_type,
            assertion_type=assertion_type,
            assertion=assertion,
            scope=scope,
            audience=audience,
        )
    except SmartRefused as refusal:
        if ip_address and refusal.error == "invalid_client":
            shared_or_local(lambda c: count_failure(c, counter))
        raise


def _token_issue(
    *, grant_type: str, assertion_type: str, assertion: str, scope: str, audience: str
) -> IssuedToken:
    if grant_type != "client_credentials":
        raise SmartRefused("unsupported_grant_type", "Use grant_type=client_credentials.")
    if assertion_type != ASSERTION_TYPE:
        raise SmartRefused("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}.")
    if not assertion:
        raise SmartRefused("invalid_request", "Send the signed JWT as client_assertion.")
    header, unverified = _unverified(assertion)
    if unverified.get("iss") != unverified.get("sub"):
        raise SmartRefused("invalid_client", "`iss` and `sub` must both be the client_id.", status=401)
    client = _client(unverified.get("iss"))
    with tenant_context(client.tenant):
        try:
            return _issue(client, kid=header["kid"], assertion=assertion, scope=scope, audience=audience)
        except SmartRefused as error:
            refusal = error  # recorded here, raised once the context committed the record
            audit.record(
                actor=Actor("smart_client", client.client_id),
                action="smart.token",
                target=client,
                tenant=client.tenant,
                outcome=audit.DENIED,
                reason=str(refusal),
            )
    raise refusal


def _issue(client: SmartClient, *, kid: str, assertion: str, scope: str, audience: str) -> IssuedToken:
    if client.revoked_at is not None:
        raise SmartRefused("invalid_client", "This client was revoked.", status=401)
    if not client.tenant.is_active:
        raise SmartRefused("invalid_client", "The organization of this client is suspended.", status=401)
    try:
        keys = client_key_set(client, kid=kid, now=timezone.now())
    except ApplicationError as error:
        raise SmartRefused("invalid_client", error.message, status=401) from None
    try:
        token = jwt.decode(assertion, keys, algorithms=ALGORITHMS)
    except JoseError:
        raise SmartRefused(
            "invalid_client",
            "The client assertion's signature does not verify with a registered key.",
            status=401,
        ) from None
    jti, expires_at = _check_claims(token.claims, client=client, audience=audience)
    granted, ours = _grant(client, scope)
    _spend(client, jti, expires_at)
    lifetime = settings.SMART_ACCESS_TOKEN_SECONDS
    issued = api_key_create(
        actor=Actor("smart_client", client.client_id),
        tenant=client.tenant,
        name=f"SMART access token: {client.name}"[:100],
        scopes=ours,
        expires_at=timezone.now() + datetime.timedelta(seconds=lifetime),
        smart_client=client,
    )
    return IssuedToken(access_token=issued.plaintext, expires_in=lifetime, scope=" ".join(granted))

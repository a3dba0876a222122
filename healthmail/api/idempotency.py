"""Idempotency-Key for POST (draft-ietf-httpapi-idempotency-key-header), declared per handler:

    class ContactCreate(APIView):
        required_scopes = {"POST": ["contacts:write"]}

        @idempotent
        def post(self, request): ...

Same key + same body within 24 hours → the first answer again (`Idempotent-Replayed: true`);
same key + another body → 422; same key while the first request still runs → 409.

Each request runs in one transaction (TenantMiddleware), so a first request's record is invisible to
others until it commits. A transaction-scoped advisory lock on the key therefore tells "in
progress" apart without blocking: a duplicate that cannot take the lock answers 409 at once. The
lock ends with the transaction, at the moment the record becomes visible. Only answers returned by
the handler are stored; an exception (problem+json) or a 5xx rolls the claim back, so the client may
retry with the same key.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
RETENTION = datetime.timedelta(hours=24)
_KEY_FORMAT = re.compile(rf"^[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}$")
_STORED_HEADERS = ("Location",)


class IdempotencyKeyInvalid(ApplicationError):
    status_code = 400
    title = "Invalid Idempotency-Key"


class IdempotencyKeyInProgress(Conflict):
    title = "Request in progress"


class IdempotencyKeyReused(ApplicationError):
    status_code = 422
    title = "Idempotency-Key reused"


@dataclass(frozen=True)
class Claim:
    record: IdempotencyRecord
    replay: bool


def request_fingerprint(*, method: str, path: str, data: object) -> str:
    """Keyed hash of method, path and the body with keys sorted: formatting does not count, content
    does. Keyed, so a guessable body cannot be confirmed from the hash."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=JSONEncoder)
    message = f"{method.upper()}\n{path}\n{canonical}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _lock_id(tenant_id: object, api_key_prefix: str, key: str) -> int:
    digest = hashlib.sha256(f"idempotency\0{tenant_id}\0{api_key_prefix}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def idempotency_claim(*, tenant: Tenant, api_key_prefix: str, key: str, fingerprint: str) -> Claim:
    """Claim `key` for this request, or find the answer to replay. Run inside the request's
    transaction: the lock taken here lasts until that transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_id(tenant.pk, api_key_prefix, key)])
        if not cursor.fetchone()[0]:
            raise IdempotencyKeyInProgress(
                "A request with this Idempotency-Key is still in progress. Retry later.",
                code="idempotency_key_in_progress",
            )
    found = (
        IdempotencyRecord.objects.for_tenant(tenant).filter(api_key_prefix=api_key_prefix, key=key).first()
    )
    if found is not None and found.created_at <= timezone.now() - RETENTION:
        found.delete()  # expired but not yet swept: the key is free again
        found = None
    if found is None:
        record = IdempotencyRecord.objects.create(
            tenant=tenant, api_key_prefix=api_key_prefix, key=key, request_fingerprint=fingerprint
        )
        return Claim(record, replay=False)
    if not hmac.compare_digest(found.request_fingerprint, fingerprint):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request. Use a new key.",
            code="idempotency_key_reused",
        )
    if found.completed_at is None:
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key is still in progress. Retry later.",
            code="idempotency_key_in_progress",
        )
    return Claim(found, replay=True)


def idempotency_complete(*, record: IdempotencyRecord, response: Response) -> None:
    body = None if response.data is None else json.loads(JSONRenderer().render(response.data))
    headers = {name: response[name] for name in _STORED_HEADERS if response.has_header(name)}
    if response.content_type:
        headers["Content-Type"] = response.content_type
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status_code=response.status_code,
        response_body=body,
        response_headers=headers,
        completed_at=timezone.now(),
    )


def idempotency_replay(record: IdempotencyRecord) -> Response:
    headers = dict(record.response_headers)
    content_type = headers.pop("Content-Type", None)
    headers[REPLAYED_HEADER] = "true"
    return Response(
        record.response_body, status=record.status_code, headers=headers, content_type=content_type
    )


def idempotency_records_expire() -> int:
    """Delete records older than 24 hours, tenant by tenant (row-level security shows no other way)."""
    cutoff = timezone.now() - RETENTION
    deleted = 0
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with tenant_context(tenant_id):
            count, _ = IdempotencyRecord.objects.for_tenant(tenant_id).filter(created_at__lte=cutoff).delete()
            deleted += count
    return deleted


Handler = Callable[..., Response]


def idempotent(handler: Handler | None = None, *, required: bool = False) -> Any:
    """Make a POST handler honour Idempotency-Key (optional unless `required=True`)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(view: Any, request: Any, *args: Any, **kwargs: Any) -> Response:
            key = request.headers.get(HEADER)
            if key is None:
                if required:
                    raise IdempotencyKeyInvalid(
                        "This operation needs an Idempotency-Key header.", code="idempotency_key_required"
                    )
                return handler(view, request, *args, **kwargs)
            if not _KEY_FORMAT.match(key):
                raise IdempotencyKeyInvalid(
                    f"The Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters.",
                    code="idempotency_key_invalid",
                )
            api_key = request.auth
            # Reading the body first: malformed JSON answers 400 before any key is claimed.
            fingerprint = request_fingerprint(method=request.method, path=request.path, data=request.data)
            with transaction.atomic():
                claim = idempotency_claim(
                    tenant=api_key.tenant, api_key_prefix=api_key.prefix, key=key, fingerprint=fingerprint
                )
                if claim.replay:
                    return idempotency_replay(claim.record)
                response = handler(view, request, *args, **kwargs)
                if response.status_code >= 500:
                    transaction.set_rollback(True)
                    return response
                idempotency_complete(record=claim.record, response=response)
            return response

        wrapper.idempotency = {"required": required}  # type: ignore[attr-defined]
        return wrapper

    return decorate(handler) if handler is not None else decorate


def is_idempotent(handler: object) -> bool:
    return getattr(handler, "idempotency", None) is not None

"""Webhook endpoints and deliveries.

    webhooks_notify_states(tenant_id, [(message, new_state), ...])  # the engine, in its own transaction
    webhooks_notify(message, "message.opened")                       # tracking, inbound, portal

Payloads carry ids, states and timestamps only, never PHI. Each event has an `event_id` that stays
the same across endpoints and redeliveries (receivers de-duplicate on it). Each delivery is a row
written in the transaction that changed the message (the queue of record); the task only wakes it
up, and the sweeper retries whatever the broker lost: delivery is at least once.
"""

from __future__ import annotations

import datetime
import json
import random
import secrets
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
from healthmail.crypto import access
from healthmail.egress.ssrf import Resolve, resolve_target, system_resolve
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Message, Stream, WebhookDelivery, WebhookEndpoint
from . import sender

EVENT_TYPES: dict[str, str] = {
    "message.delivered": "Delivered (verified TLS, portal notice or waiver)",
    "message.deferred": "Deferred, will retry",
    "message.bounced": "Bounced",
    "message.complained": "Spam complaint received",
    "message.failed": "Failed",
    "message.suppressed": "Suppressed by the send gate",
    "message.opened": "Opened (bots excluded)",
    "message.clicked": "Link clicked (bots excluded)",
    "message.portal_read": "Read in the secure portal",
    "message.portal_reply": "The recipient replied in the secure portal",
    "webhook.test": "Test event",
}
# Which message states the engine announces, and as what. Cancelled messages were never the
# receiver's business; expiry is a failure to deliver.
STATE_EVENTS: dict[str, str] = {
    Message.State.DELIVERED_TLS: "message.delivered",
    Message.State.DELIVERED_PORTAL: "message.delivered",
    Message.State.DELIVERED_WAIVER: "message.delivered",
    Message.State.DELIVERED_UNVERIFIED: "message.delivered",
    Message.State.DEFERRED: "message.deferred",
    Message.State.BOUNCED: "message.bounced",
    Message.State.FAILED: "message.failed",
    Message.State.EXPIRED: "message.failed",
    Message.State.SUPPRESSED: "message.suppressed",
}
MAX_ATTEMPTS = 8
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 6 * 3600
MAX_ENDPOINTS_PER_TENANT = 20
ROTATION_GRACE_SECONDS = 24 * 3600
MAX_ROTATION_GRACE_SECONDS = 7 * 24 * 3600


class WebhookError(ApplicationError):
    pass


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def _event_types(event_types: list[str]) -> list[str]:
    chosen = sorted(set(event_types))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown or not chosen:
        raise WebhookError(
            "Choose one or more known event types: " + ", ".join(sorted(EVENT_TYPES)) + ".",
            code="event_types_invalid",
        )
    return chosen


@transaction.atomic
def endpoint_create(
    *,
    tenant: Tenant,
    actor: Actor,
    url: str,
    event_types: list[str],
    description: str = "",
    resolve: Resolve = system_resolve,
) -> CreatedEndpoint:
    resolve_target(url, resolve=resolve)  # refused now, and checked again before every delivery
    with tenant_context(tenant):
        if WebhookEndpoint.objects.for_tenant(tenant).count() >= MAX_ENDPOINTS_PER_TENANT:
            raise WebhookError(f"At most {MAX_ENDPOINTS_PER_TENANT} endpoints.", code="too_many_endpoints")
        secret = "whsec_" + secrets.token_urlsafe(32)
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant,
            url=url,
            description=description.strip()[:200],
            secret=secret,
            event_types=_event_types(event_types),
            created_by=actor.reference,
        )
        audit.record(
            actor=actor,
            action="webhook.create",
            target=endpoint,
            tenant=tenant,
            details={"event_types": endpoint.event_types},
        )
    return CreatedEndpoint(endpoint, secret)


def endpoint_get(*, tenant: Tenant, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    found = WebhookEndpoint.objects.for_tenant(tenant).filter(pk=endpoint_id).first()
    if found is None:
        raise NotFound("No such webhook endpoint.", code="webhook_not_found")
    return found


@transaction.atomic
def endpoint_update(
    *,
    tenant: Tenant,
    actor: Actor,
    endpoint: WebhookEndpoint,
    active: bool | None = None,
    event_types: list[str] | None = None,
    url: str | None = None,
    description: str | None = None,
    resolve: Resolve = system_resolve,
) -> WebhookEndpoint:
    if url is not None and url != endpoint.url:
        resolve_target(url, resolve=resolve)  # the same check as at creation
        endpoint.url = url
    if description is not None:
        endpoint.description = description.strip()[:200]
    if active is not None:
        endpoint.active = active
    if event_types is not None:
        endpoint.event_types = _event_types(event_types)
    endpoint.save(update_fields=["url", "description", "active", "event_types"])
    audit.record(
        actor=actor,
        action="webhook.update",
        target=endpoint,
        tenant=tenant,
        details={
            "active": endpoint.active,
            "event_types": endpoint.event_types,
            "url_changed": url is not None,
        },
    )
    return endpoint


@transaction.atomic
def endpoint_rotate_secret(
    *, tenant: Tenant, actor: Actor, endpoint: WebhookEndpoint, grace_seconds: int = ROTATION_GRACE_SECONDS
) -> str:
    """A new signing secret, returned once. The old one keeps signing beside it for `grace_seconds`
    (0 ends it at once, e.g. after a leak), so receivers can switch without losing events."""
    if not 0 <= grace_seconds <= MAX_ROTATION_GRACE_SECONDS:
        raise WebhookError(
            f"The grace period is 0 to {MAX_ROTATION_GRACE_SECONDS} seconds.", code="grace_invalid"
        )
    secret = "whsec_" + secrets.token_urlsafe(32)
    # The old secret is re-sealed for its new column, never shown: a grant, not a PHI read (the
    # rotation itself is the audited event).
    grant = access.Grant(endpoint._meta.label_lower, frozenset({"secret"}), frozenset({str(endpoint.pk)}))
    with access.granted(grant):
        endpoint.previous_secret = str(endpoint.secret) if grace_seconds else None
    endpoint.previous_secret_until = (
        timezone.now() + datetime.timedelta(seconds=grace_seconds) if grace_seconds else None
    )
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
    audit.record(
        actor=actor,
        action="webhook.rotate_secret",
        target=endpoint,
        tenant=tenant,
        details={"grace_seconds": grace_seconds},
    )
    return secret


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime.datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one in its grace."""
    found = [str(endpoint.secret)]
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        found.append(str(endpoint.previous_secret))
    return found


@transaction.atomic
def endpoint_delete(*, tenant: Tenant, actor: Actor, endpoint: WebhookEndpoint) -> None:
    audit.record(actor=actor, action="webhook.delete", target=endpoint, tenant=tenant)
    endpoint.delete()


# --- events ----------------------------------------------------------------------------------------


def payload_for(
    message: Message,
    event: str,
    *,
    state: str = "",
    reason: str = "",
    occurred_at: datetime.datetime | None = None,
) -> dict:
    """Ids, state, a PHI-free reason and time only. No address, subject, content or contact data."""
    return {
        "event": event,
        "event_id": str(uuid.uuid4()),
        "message_id": str(message.pk),
        "rfc_message_id": message.message_id,
        "state": state or message.state,
        "reason": reason,
        "stream": message.stream,
        "source": {"type": message.source_type, "id": message.source_id},
        "occurred_at": (occurred_at or timezone.now()).isoformat(),
    }


def _enqueue(delivery: WebhookDelivery) -> None:
    from . import tasks  # tasks imports this module

    queue = "marketing" if delivery.stream == Stream.MARKETING else "transactional"
    tenant_id, delivery_id = str(delivery.tenant_id), str(delivery.pk)
    # Broker down: the row stays due and webhooks_sweep sends it; the state change that emitted
    # the event has committed and must not be reported as failed.
    transaction.on_commit(
        lambda: tasks.webhook_deliver.apply_async(
            kwargs={"tenant_id": tenant_id, "delivery_id": delivery_id}, queue=queue
        ),
        robust=True,
    )


def _deliveries_create(
    tenant_id, event: str, payload: dict, stream: str, endpoints, *, force: bool = False
) -> list[WebhookDelivery]:
    """One row per endpoint subscribed to the event (`force`: the given endpoints, whatever they
    subscribe to: a ping or a redelivery)."""
    now = timezone.now()
    rows = [
        WebhookDelivery(
            tenant_id=tenant_id,
            endpoint=endpoint,
            event_type=event,
            stream=stream,
            payload={**payload, "delivery_id": None},
            next_attempt_at=now,
        )
        for endpoint in endpoints
        if force or event in endpoint.event_types
    ]
    for row in rows:
        row.payload["delivery_id"] = str(row.pk)  # receivers dedupe on it
    WebhookDelivery.objects.bulk_create(rows)
    for row in rows:
        _enqueue(row)
    return rows


def webhook_deliveries_queue(
    *, tenant_id, endpoint: WebhookEndpoint, event: str, payloads: list[dict], stream: str = Stream.MARKETING
) -> list[WebhookDelivery]:
    """Deliveries to one endpoint the tenant chose (a journey's webhook step), whatever it subscribes
    to, in the caller's transaction: one bulk insert, each woken after commit, retried by the sweep.
    The payloads carry ids only."""
    now = timezone.now()
    rows = [
        WebhookDelivery(
            tenant_id=tenant_id,
            endpoint=endpoint,
            event_type=event,
            stream=stream,
            payload=dict(payload),
            next_attempt_at=now,
        )
        for payload in payloads
    ]
    for row in rows:
        row.payload["delivery_id"] = str(row.pk)  # receivers dedupe on it
    with tenant_context(tenant_id):
        WebhookDelivery.objects.bulk_create(rows)
    for row in rows:
        _enqueue(row)
    return rows


def webhooks_notify_states(*, tenant_id, changes: list[tuple[Message, str, str]]) -> int:
    """Queue an event for each (message, new state, reason) whose state is announced, for every active
    endpoint that subscribed to it. Runs in the caller's transaction: the rows commit with the state
    change or not at all. Returns the number of deliveries queued."""
    events = [(message, STATE_EVENTS.get(state, ""), state, reason) for message, state, reason in changes]
    events = [(m, event, state, reason) for m, event, state, reason in events if event]
    # The gate's reasons are our own codes; an SMTP reply may quote the recipient, so it stays out.
    if not events:
        return 0
    with tenant_context(tenant_id):
        # Only what routing needs: the sealed secret is not opened on the engine's hot path.
        endpoints = list(
            WebhookEndpoint.objects.filter(tenant_id=tenant_id, active=True).only("id", "event_types")
        )
        wanted = {event for endpoint in endpoints for event in endpoint.event_types}
        queued = 0
        for message, event, state, reason in events:
            if event in wanted:
                shown = reason if state == Message.State.SUPPRESSED else ""
                payload = payload_for(message, event, state=state, reason=shown)
                queued += len(_deliveries_create(tenant_id, event, payload, message.stream, endpoints))
    return queued


def webhooks_notify(message: Message, event: str) -> list[WebhookDelivery]:
    """Queue the event for every active endpoint of the message's tenant that subscribed to it; the
    tasks are sent after the surrounding transaction commits."""
    if event not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event {event!r}.")
    with tenant_context(message.tenant_id):
        endpoints = list(WebhookEndpoint.objects.filter(tenant_id=message.tenant_id, active=True))
        if not endpoints:
            return []
        return _deliveries_create(
            message.tenant_id, event, payload_for(message, event), message.stream, endpoints
        )


def webhook_test_send(*, tenant: Tenant, actor: Actor, endpoint: WebhookEndpoint) -> WebhookDelivery:
    payload = {
        "event": "webhook.test",
        "event_id": str(uuid.uuid4()),
        "message_id": None,
        "occurred_at": timezone.now().isoformat(),
    }
    with tenant_context(tenant):
        [delivery] = _deliveries_create(
            tenant.pk, "webhook.test", payload, Stream.TRANSACTIONAL, [endpoint], force=True
        )
        audit.record(actor=actor, action="webhook.test", target=endpoint, tenant=tenant)
    return delivery


def webhook_redeliver(
    *, tenant: Tenant, actor: Actor, endpoint: WebhookEndpoint, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Send an earlier event again as a new delivery: the same payload and event id (receivers
    de-duplicate on it), a new delivery id, a fresh attempt count."""
    with tenant_context(tenant):
        original = WebhookDelivery.objects.filter(tenant=tenant, endpoint=endpoint, pk=delivery_id).first()
        if original is None:
            raise NotFound("No such webhook delivery.", code="webhook_delivery_not_found")
        [delivery] = _deliveries_create(
            tenant.pk, original.event_type, dict(original.payload), original.stream, [endpoint], force=True
        )
        audit.record(
            actor=actor,
            action="webhook.redeliver",
            target=endpoint,
            tenant=tenant,
            details={"delivery": str(original.pk), "new_delivery": str(delivery.pk)},
        )
    return delivery


# --- delivering ------------------------------------------------------------------------------------


def backoff(attempts: int, *, rng: random.Random | None = None) -> datetime.timedelta:
    """Exponential with full jitter in the upper half: 30 s, 1 min, 2 min... capped at 6 h."""
    ceiling = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** max(attempts - 1, 0))
    jitter = (rng or random.SystemRandom()).uniform(ceiling / 2, ceiling)
    return datetime.timedelta(seconds=jitter)


def webhook_delivery_attempt(
    *, delivery_id: uuid.UUID, resolve: Resolve = system_resolve
) -> WebhookDelivery | None:
    """One try (in the tenant's context). Claims the row so two workers never send it at once."""
    now = timezone.now()
    lease = now + datetime.timedelta(seconds=sender.TIMEOUT_SECONDS * 3)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=lease)
    if claimed != 1:
        return None  # done, not due, or another worker has it
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.active:
        _finish(delivery, WebhookDelivery.State.FAILED, None, 0, "endpoint disabled")
        return delivery
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    try:
        target = resolve_target(endpoint.url, resolve=resolve)
    except ApplicationError as refusal:
        result = sender.Result(None, 0, refusal.message[:300])
    else:
        stamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "HealthMail-Webhooks/1",
            sender.TIMESTAMP_HEADER: str(stamp),
            sender.SIGNATURE_HEADER: sender.signatures(signing_secrets(endpoint, now=now), stamp, body),
            sender.EVENT_HEADER: delivery.event_type,
            sender.DELIVERY_HEADER: str(delivery.pk),
        }
        result = sender.post(
            target, body=body, headers=headers, ca_file=getattr(settings, "WEBHOOK_CA_FILE", None)
        )
    delivery.attempts += 1
    delivery.attempt_log = [
        *delivery.attempt_log[-19:],
        {
            "at": now.isoformat(),
            "status": result.status,
            "duration_ms": result.duration_ms,
            "error": result.error,
        },
    ]
    if result.ok:
        _finish(delivery, WebhookDelivery.State.SUCCEEDED, result.status, result.duration_ms, "")
    elif delivery.attempts >= MAX_ATTEMPTS:
        _finish(delivery, WebhookDelivery.State.FAILED, result.status, result.duration_ms, result.error)
    else:
        delivery.next_attempt_at = timezone.now() + backoff(delivery.attempts)
        _save(delivery, result.status, result.duration_ms, result.error)
    return delivery


def _save(delivery: WebhookDelivery, status, duration_ms, error: str) -> None:
    delivery.last_status_code = status
    delivery.last_duration_ms = duration_ms
    delivery.last_error = error[:300] or (f"HTTP {status}" if status and not 200 <= status < 300 else "")
    delivery.save()


def _finish(delivery: WebhookDelivery, state: str, status, duration_ms, error: str) -> None:
    delivery.state = state
    delivery.finished_at = timezone.now()
    delivery.next_attempt_at = None
    _save(delivery, status, duration_ms, error)


def webhook_deliveries_due(*, tenant_id, limit: int = 500) -> list[uuid.UUID]:
    return list(
        WebhookDelivery.objects.filter(
            tenant_id=tenant_id, state=WebhookDelivery.State.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )

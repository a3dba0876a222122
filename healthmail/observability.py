"""Request ids, log context, Prometheus metrics and the health endpoint.

Logs are JSON lines carrying request_id and tenant_id. Nothing here ever logs a request body,
query string, path or header value other than the request id: those may carry PHI. Requests are
logged by route pattern (`platform/tenants/<uuid:tenant_id>/`), never by their concrete path.
"""

from __future__ import annotations

import contextvars
import functools
import hmac
import ipaddress
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from celery import signals as celery_signals
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from healthmail.outages import retry_after_headers
from healthmail.tenants.context import current_tenant_id

logger = logging.getLogger("healthmail.request")


@dataclass(frozen=True)
class RequestMeta:
    request_id: str = ""
    client_ip: str | None = None


_request_meta: contextvars.ContextVar[RequestMeta] = contextvars.ContextVar(
    "request_meta",
    default=RequestMeta(),  # noqa: B039 - frozen, so never mutated
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

HTTP_REQUESTS = Counter("healthmail_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("healthmail_http_request_seconds", "HTTP request latency", ["method", "route"])
HEALTH_CHECKS = Counter("healthmail_health_checks_total", "Health checks answered", ["status"])


class IdentifiedRequest(HttpRequest):
    """Only a type: the request once RequestIdMiddleware has named it."""

    request_id: str


_GetResponse = Callable[[HttpRequest], HttpResponse]


def request_meta() -> RequestMeta:
    return _request_meta.get()


def client_ip(request: HttpRequest) -> str | None:
    # Behind a proxy, configure it to set REMOTE_ADDR (e.g. gunicorn --forwarded-allow-ips).
    return request.META.get("REMOTE_ADDR") or None


def _route(request: HttpRequest) -> str:
    """The matched URL pattern, bounded in number and free of ids and tokens."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return f"/{match.route}"
    return request.path if request.path in _EARLY_ENDPOINTS else "unmatched"


class RequestIdMiddleware:
    """Accept a well-formed X-Request-ID or make one; echo it back; expose it to logs and audit.

    /healthz and /metrics are answered here, before the session and transaction middleware: a
    database outage must give a 503 naming the database (not a 500 from opening a transaction), and
    probes arrive with whatever Host header the orchestrator uses.
    """

    def __init__(self, get_response: _GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: IdentifiedRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_meta.set(RequestMeta(request_id, client_ip(request)))
        started = time.perf_counter()
        try:
            early = _EARLY_ENDPOINTS.get(request.path)
            response = early(request) if early is not None else self.get_response(request)
            if early is None:
                _log_request(request, response, time.perf_counter() - started)
        finally:
            _request_meta.reset(token)
        response["X-Request-ID"] = request_id
        return response


def _log_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    tenant = getattr(request, "tenant", None)
    logger.info(
        "request",
        extra={
            "method": request.method,
            "route": _route(request),
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1),
            # The tenant context has ended by now; name the request's tenant explicitly.
            "tenant_id": str(tenant.pk) if tenant is not None else "",
        },
    )


class MetricsMiddleware:
    def __init__(self, get_response: _GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        route = _route(request)
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response


class LogContextFilter(logging.Filter):
    """Adds request_id and tenant_id to every record (unless the caller named them explicitly),
    and replaces a request object attached to a record by its method and route.

    Django's `django.request` logger attaches the request to 4xx/5xx records; its repr holds the
    full path with the query string, which the JSON formatter would print. Query strings may hold
    PHI (a search for a patient's name), so only the route pattern is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if isinstance(request, HttpRequest):
            record.request = f"{request.method} {_route(request)}"
            if not getattr(record, "request_id", ""):
                record.request_id = getattr(request, "request_id", "")
        if not getattr(record, "request_id", ""):
            record.request_id = _request_meta.get().request_id
        if not getattr(record, "tenant_id", ""):
            tenant_id = current_tenant_id()
            record.tenant_id = str(tenant_id) if tenant_id else ""
        return True


@celery_signals.setup_logging.connect  # type: ignore[untyped-decorator]  # Celery has no types
def _keep_django_logging(**kwargs: Any) -> None:
    """Celery workers and beat keep the JSON logging Django configured (this module is imported by
    that configuration, before Celery sets up logging) instead of replacing the root handlers with
    Celery's plain-text format."""


# --- /healthz -----------------------------------------------------------------------------------------


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_redis() -> str:
    from django.core.cache import cache

    cache.set("healthz", "1", 5)
    return "ok" if cache.get("healthz") == "1" else "unreadable"


def _check_workers() -> dict[str, int]:
    """Workers consuming each queue, as answered to a broadcast within HEALTHZ_WORKER_TIMEOUT."""
    from healthmail.celery import app

    replies = app.control.inspect(timeout=settings.HEALTHZ_WORKER_TIMEOUT).active_queues() or {}
    per_queue = {"transactional": 0, "marketing": 0}
    for queues in replies.values():
        for queue in queues:
            if queue["name"] in per_queue:
                per_queue[queue["name"]] += 1
    return per_queue


def _run(check: Callable[[], object]) -> object:
    try:
        return check()
    except Exception as error:  # noqa: BLE001 - a health check reports every failure as down
        # The class name only: an exception message may hold a host name or a password.
        return f"down: {error.__class__.__name__}"


def healthz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and one worker per queue. 200 when all are up, else 503 naming what is not."""
    report: dict[str, object] = {"database": _run(_check_database), "redis": _run(_check_redis)}
    # Workers answer through Redis: without it the broadcast would only wait out its timeout.
    report["workers"] = _run(_check_workers) if report["redis"] == "ok" else "unknown: redis is down"
    down = [name for name in ("database", "redis") if report[name] != "ok"]
    workers = report["workers"]
    if not isinstance(workers, dict) or not all(workers.values()):
        down.append("workers")
    report["status"] = "degraded" if down else "ok"
    report["down"] = down
    HEALTH_CHECKS.labels(report["status"]).inc()
    headers = {"Cache-Control": "no-store", **(retry_after_headers() if down else {})}
    return JsonResponse(report, status=503 if down else 200, headers=headers)


# --- /metrics -----------------------------------------------------------------------------------------


def _registry() -> CollectorRegistry:
    # Several gunicorn workers: each writes its samples under PROMETHEUS_MULTIPROC_DIR and any one of
    # them reports the sum. prometheus_client reads that variable itself, hence the environment here.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@functools.cache
def _metrics_networks(configured: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(network, strict=False) for network in configured)
    except ValueError as error:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {error}") from error


def _metrics_authorized(request: HttpRequest) -> bool:
    """A bearer token (METRICS_TOKEN) or a scraper on an allowed network; nothing else, not even
    when neither is configured (then nobody is allowed but loopback, the default network list)."""
    expected = settings.METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if (
        expected
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), expected.encode())
    ):
        return True
    try:
        address = ipaddress.ip_address(client_ip(request) or "")
    except ValueError:
        return False
    return any(address in network for network in _metrics_networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for the scrapers METRICS_TOKEN and METRICS_ALLOWED_NETWORKS allow."""
    if not _metrics_authorized(request):
        response = HttpResponse(
            "A valid bearer token or an allowed network is required.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


_EARLY_ENDPOINTS = {"/healthz": healthz, "/metrics": metrics}

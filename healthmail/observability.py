"""Request ids, log context, Prometheus metrics and the health endpoint.

Logs are JSON lines carrying request_id and tenant_id. Nothing here ever logs a request body,
query string or header value other than the request id: those may carry PHI.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from healthmail.tenants.context import current_tenant_id


@dataclass(frozen=True)
class RequestMeta:
    request_id: str = ""
    client_ip: str | None = None


_request_meta: contextvars.ContextVar[RequestMeta] = contextvars.ContextVar("request_meta", default=RequestMeta())
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

HTTP_REQUESTS = Counter("healthmail_http_requests_total", "HTTP requests", ["method", "status"])
HTTP_LATENCY = Histogram("healthmail_http_request_seconds", "HTTP request latency", ["method"])


def request_meta() -> RequestMeta:
    return _request_meta.get()


def client_ip(request: HttpRequest) -> str | None:
    # Behind a proxy, configure it to set REMOTE_ADDR (e.g. gunicorn --forwarded-allow-ips).
    return request.META.get("REMOTE_ADDR") or None


class RequestIdMiddleware:
    """Accept a well-formed X-Request-ID or make one; echo it back; expose it to logs and audit."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_meta.set(RequestMeta(request_id, client_ip(request)))
        try:
            response = self.get_response(request)
        finally:
            _request_meta.reset(token)
        response["X-Request-ID"] = request_id
        return response


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        HTTP_LATENCY.labels(request.method).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response


class LogContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_meta.get().request_id
        tenant_id = current_tenant_id()
        record.tenant_id = str(tenant_id) if tenant_id else ""
        return True


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_redis() -> str:
    from django.core.cache import cache

    cache.set("healthz", "1", 5)
    return "ok" if cache.get("healthz") == "1" else "unreadable"


def _check_workers() -> dict[str, int]:
    from healthmail.celery import app

    replies = app.control.inspect(timeout=settings.HEALTHZ_WORKER_TIMEOUT).active_queues() or {}
    per_queue = {"transactional": 0, "marketing": 0}
    for queues in replies.values():
        for queue in queues:
            if queue["name"] in per_queue:
                per_queue[queue["name"]] += 1
    return per_queue


def healthz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and one worker per queue. 200 when all are up, else 503 naming what is not."""
    report: dict[str, object] = {}
    healthy = True
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        try:
            report[name] = check()
        except Exception as error:  # noqa: BLE001 - a health check reports every failure as down
            report[name] = f"down: {error.__class__.__name__}"
        healthy = healthy and report[name] == "ok"
    try:
        workers = _check_workers()
        report["workers"] = workers
        healthy = healthy and all(workers.values())
    except Exception as error:  # noqa: BLE001
        report["workers"] = f"down: {error.__class__.__name__}"
        healthy = False
    report["status"] = "ok" if healthy else "degraded"
    return JsonResponse(report, status=200 if healthy else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)

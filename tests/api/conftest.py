"""API test helpers: keys issued through the real service, and a client that presents them."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEvent
from healthmail.accounts.api_keys import SCOPES, api_key_create
from healthmail.tenants.context import platform_context, tenant_context

PROBLEM = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}


@pytest.fixture
def issue_key(tenant_a):
    """`issue_key(scopes=[...], tenant=..., expires_at=...)` → the plaintext key, shown once."""

    def issue(*, scopes=None, tenant=None, name="Test integration", expires_at=None) -> str:
        issued = api_key_create(
            actor=Actor.system("tests"),
            tenant=tenant or tenant_a,
            name=name,
            scopes=list(SCOPES) if scopes is None else scopes,
            expires_at=expires_at,
        )
        return issued.plaintext

    return issue


@pytest.fixture
def api():
    """`api(key).get(path)`: a Django test client sending `Authorization: Bearer <key>`."""

    class ApiClient:
        def __init__(self, key: str | None):
            self.client = Client()
            self.headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}

        def get(self, path, **extra):
            return self.client.get(path, **self.headers, **extra)

        def post(self, path, data=None, content_type="application/json", **extra):
            return self.client.post(path, data, content_type=content_type, **self.headers, **extra)

        def generic(self, method, path, data="", content_type="application/json", **extra):
            return self.client.generic(method, path, data, content_type=content_type, **self.headers, **extra)

    return ApiClient


def assert_problem(response, status: int, code: str | None = None) -> dict:
    """The answer is an RFC 9457 problem document with `status`, no trace, no internals."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert PROBLEM_FIELDS <= set(body)
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["request_id"] == response["X-Request-ID"]
    text = response.content.decode()
    for leak in ("Traceback", 'File "', "django.", "psycopg", "Exception"):
        assert leak not in text
    if code is not None:
        assert body["code"] == code
    return body


def audit_events(*, tenant=None, **filters) -> list[AuditEvent]:
    """Audit events of a tenant (or platform-level ones), oldest first."""
    scope = tenant_context(tenant) if tenant is not None else platform_context()
    with scope:
        queryset = AuditEvent.objects.filter(**filters)
        if tenant is None:
            queryset = queryset.filter(tenant__isnull=True)
        return list(queryset.order_by("id"))


def days_ago(days: int) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)

"""API test helpers: keys issued through the real service, and a client that presents them."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from healthmail.tenants.context import platform_context, tenant_context

PROBLEM = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}


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


@pytest.fixture
def key_creator(tenant_a):
    """A person creates the key: writes that need one answerable (campaigns) then run past that check."""
    from healthmail.accounts.roles import Role
    from tests.factories import MembershipFactory

    return MembershipFactory(tenant=tenant_a, role=Role.TENANT_ADMIN).user

"""Helpers for sign-in tests: clients with their own network address (so lockout counters of one test
never touch another), an unverified session, and audit look-ups."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from django.test import Client

from audit.models import AuditEvent
from healthmail.accounts import throttle
from healthmail.tenants.context import platform_context, tenant_context

_addresses = itertools.count(1)


@pytest.fixture
def fresh_client():
    """A test client from an address no other test uses, with its failure counter cleared."""

    def make() -> Client:
        address = f"10.{random.randint(0, 255)}.{next(_addresses) % 256}.{random.randint(1, 254)}"
        throttle.reset_client(client_ip=address)
        return Client(REMOTE_ADDR=address)

    return make


@pytest.fixture(autouse=True)
def _clear_local_counter():
    throttle.reset_client(client_ip="127.0.0.1")
    yield
    throttle.reset_client(client_ip="127.0.0.1")


def password_only(client: Client, user, *, tenant=None) -> Client:
    """A session after the password step, before the second factor."""
    client.force_login(user)
    session = client.session
    now = int(time.time())
    session["auth_at"] = now
    session["last_seen"] = now
    if tenant is not None:
        session["tenant_id"] = str(tenant.pk)
    session.save()
    return client


def events(action: str, *, tenant=None, outcome: str | None = None) -> list[AuditEvent]:
    """Audit events of one action, in the tenant's trail or (tenant=None) the platform trail."""
    if tenant is None:
        with platform_context():
            found = AuditEvent.objects.filter(action=action, tenant__isnull=True)
            return list(found.filter(outcome=outcome) if outcome else found)
    with tenant_context(tenant):
        found = AuditEvent.objects.filter(action=action, tenant=tenant)
        return list(found.filter(outcome=outcome) if outcome else found)

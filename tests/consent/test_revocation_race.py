"""Revocation racing a queued send: once a revocation COMMITS, the gate refuses that contact, even in
a delivery transaction that was already open (READ COMMITTED: each statement sees what has
committed when it starts). Delivery calls the gate right before each message, so a message queued
before the revocation is not sent after it; a message whose SMTP transaction had already started
when the revocation committed can still leave, which no system can undo."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, transaction

from consent import authorizations, services
from consent.gate import may_send, may_send_batch
from contacts.models import Contact
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory

from .conftest import evidence, new_contact, new_text, sign
from .scenarios import topic_for

pytestmark = pytest.mark.usefixtures("committed_db")


def _in_thread(work):
    """Run `work` on another thread: its own database connection, its own transaction, committed."""
    errors = []

    def run():
        try:
            work()
        except Exception as error:  # noqa: BLE001 - re-raised in the test thread
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    if errors:
        raise errors[0]


def _committed_world():
    slug = f"race-{uuid.uuid4().hex[:10]}"
    tenant = TenantFactory(name=f"Race {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    contact = new_contact(tenant)
    topic = topic_for(tenant, "marketing")
    services.consent_grant(tenant=tenant, contact=contact, topic=topic, evidence=evidence())
    authorization, _ = sign(tenant, contact, new_text(tenant))
    return tenant, contact, topic, authorization


def test_revoked_authorization_stops_a_queued_send_once_committed():
    tenant, contact, topic, authorization = _committed_world()
    with transaction.atomic():  # the delivery worker's transaction, open before the revocation
        assert may_send(contact=contact, purpose="marketing", uses_phi=True, topic=topic).allowed
        _in_thread(
            lambda: authorizations.authorization_revoke(
                tenant=tenant, authorization=authorization, evidence=evidence()
            )
        )
        decision = may_send(contact=contact, purpose="marketing", uses_phi=True, topic=topic)
        assert (decision.allowed, decision.code) == (False, "authorization_revoked")
        batch = may_send_batch(
            tenant=tenant, contact_ids=[contact.pk], purpose="marketing", uses_phi=True, topic=topic
        )
        assert batch[contact.pk].code == "authorization_revoked"


def test_revoked_opt_in_stops_a_queued_send_once_committed():
    tenant, contact, topic, _ = _committed_world()
    assert may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).allowed

    def revoke():
        with tenant_context(tenant):
            fresh = Contact.objects.get(pk=contact.pk)
        services.consent_revoke(tenant=tenant, contact=fresh, topic=topic, evidence=evidence())

    _in_thread(revoke)
    assert (
        may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).code == "opt_in_revoked"
    )


def test_an_uncommitted_revocation_does_not_count_yet():
    """Until the revoking transaction commits, the gate still sees the opt-in; the moment it
    commits, the gate refuses: the boundary is the commit, nothing earlier, nothing later."""
    tenant, contact, topic, _ = _committed_world()
    revoked, release = threading.Event(), threading.Event()

    def revoke_and_wait():
        with transaction.atomic():
            services.consent_revoke(tenant=tenant, contact=contact, topic=topic, evidence=evidence())
            revoked.set()
            release.wait(timeout=20)

    errors = []

    def run():
        try:
            revoke_and_wait()
        except Exception as error:  # noqa: BLE001 - re-raised below
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert revoked.wait(timeout=20)
    assert may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).allowed
    release.set()
    thread.join(timeout=20)
    assert not errors
    assert (
        may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).code == "opt_in_revoked"
    )

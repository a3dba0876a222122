"""A patient's secure reply tells the sender: one system mail per staff member who may read replies,
a `message.portal_reply` webhook (ids only) and an unread badge on the staff portal page."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from delivery.models import PortalMessage, WebhookDelivery
from delivery.outbox import message_content
from delivery.portal import services
from delivery.webhooks.services import endpoint_create
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.factories import MembershipFactory
from tests.sysmail.outbox import sent_mail

from .outbox_helpers import make_message

pytestmark = pytest.mark.django_db

REPLY = "My fasting glucose was 141 this morning, should I change the dose?"
ADDRESS = "dana.reply@patients.example"


def _portal_message(tenant) -> PortalMessage:
    message = make_message(tenant, address=ADDRESS)
    with tenant_context(tenant):
        services.portal_deliver(message, message_content(message))
        return PortalMessage.objects.get(message_id=message.pk)


def _reply(portal_message: PortalMessage, tenant):
    with tenant_context(tenant):
        return services.portal_reply(portal_message=portal_message, body=REPLY)


def _endpoint(tenant, events):
    return endpoint_create(
        tenant=tenant, actor=Actor.system("tests"), url="http://127.0.0.1:9/hooks", event_types=events
    ).endpoint


def test_reply_mails_every_entitled_staff_member_without_its_text(tenant_a, tenant_b, settings):
    settings.PUBLIC_BASE_URL = "https://mail.clinic.example"
    officers = [MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user for _ in range(2)]
    MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER, is_active=False)
    for role in (Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER):
        MembershipFactory(tenant=tenant_a, role=role)
    MembershipFactory(tenant=tenant_b, role=Role.COMPLIANCE_OFFICER)
    portal_message = _portal_message(tenant_a)

    reply = _reply(portal_message, tenant_a)

    outbox = sent_mail()
    assert sorted(address for mail in outbox for address in mail.to) == sorted(u.email for u in officers)
    link = "https://mail.clinic.example" + reverse("portal_staff:detail", args=[portal_message.pk])
    for mail in outbox:
        assert link in mail.body
        assert "secure reply" in mail.subject
        for secret in (REPLY, "glucose", ADDRESS, "dana"):
            assert secret not in mail.subject + mail.body
    with tenant_context(tenant_a):
        from healthmail.sysmail.models import SystemMail

        rows = list(SystemMail.objects.filter(topic="delivery.portal_reply"))
    assert {tuple(r.source_ids) for r in rows} == {(str(reply.pk),)}


def test_reply_emits_one_webhook_with_ids_only(tenant_a, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    subscribed = _endpoint(tenant_a, ["message.portal_reply"])
    _endpoint(tenant_a, ["message.delivered", "message.portal_read"])
    portal_message = _portal_message(tenant_a)

    _reply(portal_message, tenant_a)

    with tenant_context(tenant_a):
        deliveries = list(WebhookDelivery.objects.filter(event_type="message.portal_reply"))
    assert [d.endpoint_id for d in deliveries] == [subscribed.pk]
    payload = deliveries[0].payload
    assert payload["message_id"] == str(portal_message.message_id)
    text = json.dumps(payload)
    for secret in (REPLY, "glucose", ADDRESS):
        assert secret not in text


def test_a_refused_reply_notifies_no_one(tenant_a, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    _endpoint(tenant_a, ["message.portal_reply"])
    MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER)
    portal_message = _portal_message(tenant_a)
    with tenant_context(tenant_a), pytest.raises(services.ApplicationError):
        services.portal_reply(portal_message=portal_message, body="   ")
    assert sent_mail() == []
    with tenant_context(tenant_a):
        assert not WebhookDelivery.objects.filter(event_type="message.portal_reply").exists()


def test_staff_page_shows_the_reply_unread_until_opened(member_client, tenant_a):
    portal_message = _portal_message(tenant_a)
    _reply(portal_message, tenant_a)
    client = member_client(Role.COMPLIANCE_OFFICER)

    listing = client.get(reverse("portal_staff:list")).content.decode()
    assert "1 unread reply" in listing
    assert REPLY not in listing

    client.get(reverse("portal_staff:detail", args=[portal_message.pk]))
    assert "unread" not in client.get(reverse("portal_staff:list")).content.decode()


def test_foreign_tenant_staff_see_no_unread_reply(member_client, tenant_a, tenant_b):
    _reply(_portal_message(tenant_b), tenant_b)
    client = member_client(Role.COMPLIANCE_OFFICER)  # a member of tenant A
    listing = client.get(reverse("portal_staff:list")).content.decode()
    assert "unread" not in listing
    assert "No portal messages yet." in listing

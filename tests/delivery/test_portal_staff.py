"""Staff side of the portal and the webhook pages: roles, foreign-tenant 404s, recall, replies."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from delivery.models import PortalMessage, WebhookEndpoint
from delivery.outbox import message_content
from delivery.portal import services
from delivery.portal.services import portal_deliver
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context

from .outbox_helpers import make_message

pytestmark = pytest.mark.django_db

# The API tests' fixtures, reused here.

PHI_ROLES = {Role.COMPLIANCE_OFFICER}  # tenant admins are masked by default: replies are PHI


def _portal_message(tenant, reply: str = "") -> PortalMessage:
    message = make_message(tenant)
    with tenant_context(tenant):
        portal_deliver(message, message_content(message))
        portal_message = PortalMessage.objects.get(message_id=message.pk)
        if reply:
            services.portal_reply(portal_message=portal_message, body=reply)
    return portal_message


@pytest.mark.parametrize("role", list(Role))
def test_portal_pages_need_phi_permission(member_client, tenant_a, role):
    portal_message = _portal_message(tenant_a)
    client = member_client(role)
    listing = client.get(reverse("portal_staff:list"))
    detail = client.get(reverse("portal_staff:detail", args=[portal_message.pk]))
    expected = 200 if role in PHI_ROLES else 403
    assert (listing.status_code, detail.status_code) == (expected, expected)


def test_staff_reads_replies_with_an_audited_phi_access(member_client, tenant_a):
    portal_message = _portal_message(tenant_a, reply="Please call me about the result.")
    client = member_client(Role.COMPLIANCE_OFFICER)
    page = client.get(reverse("portal_staff:detail", args=[portal_message.pk]))
    assert "Please call me about the result." in page.content.decode()
    with tenant_context(tenant_a):
        read = AuditEvent.objects.filter(action="phi.read", target_type="delivery.portalreply").get()
    assert read.actor_id == str(client.membership.user.pk)


def test_recall_from_the_staff_page(member_client, tenant_a):
    portal_message = _portal_message(tenant_a)
    client = member_client(Role.COMPLIANCE_OFFICER)
    response = client.post(
        reverse("portal_staff:recall", args=[portal_message.pk]), {"reason": "sent too early"}
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        portal_message.refresh_from_db()
        assert portal_message.recalled_at is not None
        assert AuditEvent.objects.filter(action="portal.recall").count() == 1


def test_foreign_tenant_portal_message_is_404(member_client, tenant_a, tenant_b):
    foreign = _portal_message(tenant_b)
    client = member_client(Role.COMPLIANCE_OFFICER)
    assert client.get(reverse("portal_staff:detail", args=[foreign.pk])).status_code == 404
    assert client.post(reverse("portal_staff:recall", args=[foreign.pk])).status_code == 404
    with tenant_context(tenant_b):
        foreign.refresh_from_db()
    assert foreign.recalled_at is None


@pytest.mark.parametrize("role", list(Role))
def test_webhook_pages_are_for_tenant_admins(member_client, role):
    client = member_client(role)
    expected = 200 if role == Role.TENANT_ADMIN else 403
    assert client.get(reverse("webhooks:list")).status_code == expected


def test_admin_creates_an_endpoint_and_sees_the_secret_once(member_client, tenant_a, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    client = member_client(Role.TENANT_ADMIN)
    response = client.post(
        reverse("webhooks:list"),
        {"url": "http://127.0.0.1:9/hooks", "event_types": ["message.delivered", "message.bounced"]},
    )
    assert response.status_code == 200
    assert "whsec_" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    with tenant_context(tenant_a):
        endpoint = WebhookEndpoint.objects.get()
    detail = client.get(reverse("webhooks:detail", args=[endpoint.pk])).content.decode()
    assert "whsec_" not in detail
    client.post(reverse("webhooks:action", args=[endpoint.pk]), {"action": "disable"})
    with tenant_context(tenant_a):
        endpoint.refresh_from_db()
    assert endpoint.active is False


def test_private_url_is_refused_on_the_page(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    response = client.post(
        reverse("webhooks:list"),
        {"url": "https://169.254.169.254/latest", "event_types": ["message.delivered"]},
    )
    assert response.status_code == 400
    assert "cannot receive webhooks" in response.content.decode()


def test_foreign_tenant_endpoint_is_404(member_client, tenant_b, settings):
    from delivery.webhooks.services import endpoint_create
    from healthmail.actors import Actor

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    foreign = endpoint_create(
        tenant=tenant_b,
        actor=Actor.system("tests"),
        url="http://127.0.0.1:9/x",
        event_types=["message.delivered"],
    ).endpoint
    client = member_client(Role.TENANT_ADMIN)
    assert client.get(reverse("webhooks:detail", args=[foreign.pk])).status_code == 404
    assert client.post(reverse("webhooks:action", args=[foreign.pk]), {"action": "delete"}).status_code == 404
    with tenant_context(tenant_b):
        assert WebhookEndpoint.objects.filter(pk=foreign.pk).exists()


def test_webhook_api_creates_lists_and_logs(issue_key, api, tenant_a, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    client = api(issue_key(scopes=["webhooks:manage"]))
    created = client.post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/in", "event_types": ["message.bounced"]}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    listing = client.get("/api/v1/webhooks").json()
    assert [item["id"] for item in listing["results"]] == [body["id"]]
    assert "secret" not in listing["results"][0]
    assert client.get(f"/api/v1/webhooks/{body['id']}/deliveries").status_code == 200


def test_webhook_api_refuses_private_targets(issue_key, api):
    client = api(issue_key(scopes=["webhooks:manage"]))
    response = client.post(
        "/api/v1/webhooks", {"url": "https://10.0.0.1/in", "event_types": ["message.bounced"]}
    )
    assert response.status_code == 400


def test_webhook_api_needs_its_scope(issue_key, api):
    client = api(issue_key(scopes=["contacts:read"]))
    assert client.get("/api/v1/webhooks").status_code == 403

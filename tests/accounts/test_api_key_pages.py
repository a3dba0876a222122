"""Tenant-admin API key pages: the key is shown once, stored hashed, revocable; others refused."""

import datetime
import hashlib
import re
import uuid

import pytest
from django.utils import timezone

from healthmail.accounts.api_keys import api_key_authenticate, api_key_create
from healthmail.accounts.models import ApiKey
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context

from .conftest import events

pytestmark = pytest.mark.django_db


def _key(tenant, name="Existing") -> ApiKey:
    return api_key_create(
        actor=Actor.system("test"), tenant=tenant, name=name, scopes=["contacts:read"]
    ).api_key


def _reload(api_key) -> ApiKey:
    with tenant_context(api_key.tenant_id):
        return ApiKey.objects.get(pk=api_key.pk)


def test_create_shows_the_key_once(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    expiry = (timezone.now().date() + datetime.timedelta(days=30)).isoformat()
    response = client.post(
        "/api-keys/new/",
        {"name": "EHR bridge", "scopes": ["contacts:write", "messages:send"], "expires_on": expiry},
    )
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    plaintext = re.search(r'id="new-api-key">(hm_[0-9a-f]{12}_[\w-]+)<', response.content.decode()).group(1)
    with tenant_context(tenant_a):
        stored = ApiKey.objects.get(name="EHR bridge")
    assert stored.scopes == ["contacts:write", "messages:send"]
    assert stored.secret_hash == hashlib.sha256(plaintext.split("_", 2)[2].encode()).hexdigest()
    assert stored.expires_at.date().isoformat() == expiry
    assert api_key_authenticate(plaintext, ip_address="10.0.0.1").pk == stored.pk
    listing = client.get("/api-keys/").content.decode()
    assert stored.prefix in listing
    assert plaintext not in listing
    assert len(events("api_key.create", tenant=tenant_a)) == 1


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"name": "x", "scopes": []}, 200, "This field is required."),
        (
            {"name": "x", "scopes": ["contacts:read"], "expires_on": "2000-01-01"},
            400,
            "The expiry must be in the",
        ),
        ({"name": "x", "scopes": ["root"]}, 200, "Select a valid choice."),
    ],
)
def test_create_refuses_bad_input(member_client, tenant_a, data, status, message):
    client = member_client(Role.TENANT_ADMIN)
    response = client.post("/api-keys/new/", data)
    assert response.status_code == status
    assert message in response.content.decode()
    with tenant_context(tenant_a):
        assert not ApiKey.objects.exists()


def test_revoke(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    api_key = _key(tenant_a)
    assert client.post(f"/api-keys/{api_key.pk}/revoke/").url == "/api-keys/"
    assert _reload(api_key).revoked_at is not None
    assert "Revoked" in client.get("/api-keys/").content.decode()
    assert len(events("api_key.revoke", tenant=tenant_a)) == 1


def test_foreign_tenant_key_is_not_found(member_client, tenant_b):
    client = member_client(Role.TENANT_ADMIN)
    foreign = _key(tenant_b, "Foreign")
    assert client.post(f"/api-keys/{foreign.pk}/revoke/").status_code == 404
    assert client.post(f"/api-keys/{uuid.uuid4()}/revoke/").status_code == 404
    assert _reload(foreign).revoked_at is None
    assert "Foreign" not in client.get("/api-keys/").content.decode()


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_other_roles_are_refused(member_client, tenant_a, role):
    client = member_client(role)
    api_key = _key(tenant_a)
    assert client.get("/api-keys/").status_code == 403
    assert client.get("/api-keys/new/").status_code == 403
    assert client.post("/api-keys/new/", {"name": "x", "scopes": ["contacts:read"]}).status_code == 403
    assert client.post(f"/api-keys/{api_key.pk}/revoke/").status_code == 403
    assert _reload(api_key).revoked_at is None
    with tenant_context(tenant_a):
        assert ApiKey.objects.count() == 1

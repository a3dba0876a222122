"""Tenant-admin pages for SMART clients: register with an inline JWK Set or its URL, the scopes its
tokens may carry; revoke ends its tokens. Other roles are refused; the page's errors say what to fix."""

from __future__ import annotations

import json
import re

import pytest
from joserfc.jwk import KeySet

from healthmail.accounts.models import ApiKey, SmartClient
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.fhir.smart import Backend, new_key
from tests.fhir.test_smart import _token
from tests.fhir.test_smart_jwks_url import key_server  # noqa: F401  (the fixture)

from .conftest import events

pytestmark = pytest.mark.django_db
SCOPES = ["contacts:phi", "contacts:read"]


def _public(*keys) -> str:
    return json.dumps(KeySet(list(keys)).as_dict(private=False))


def _registered(tenant) -> SmartClient:
    with tenant_context(tenant):
        return SmartClient.objects.get()


def test_an_admin_registers_inline_keys_and_the_client_gets_tokens(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    key = new_key()
    response = client.post(
        "/smart-clients/new/",
        {"name": "Epic production", "jwks": _public(key), "scopes": SCOPES},
        follow=True,
    )
    page = response.content.decode()
    registered = _registered(tenant_a)
    assert registered.client_id in page
    assert (registered.scopes, registered.jwks_url, registered.created_by) == (
        SCOPES,
        "",
        client.membership.user,
    )
    assert len(events("smart_client.register", tenant=tenant_a)) == 1
    assert _token(Backend(registered.client_id, key, "RS384").form("system/Patient.rs")).status_code == 200
    assert "Epic production" in client.get("/smart-clients/").content.decode()


def test_an_admin_registers_keys_by_url(member_client, tenant_a, key_server):  # noqa: F811
    key = new_key("ES384")
    key_server.publish(key)
    client = member_client(Role.TENANT_ADMIN)
    client.post("/smart-clients/new/", {"name": "CRM", "jwks_url": key_server.url, "scopes": SCOPES})
    registered = _registered(tenant_a)
    assert registered.jwks_url == key_server.url
    assert key_server.hits == 1
    assert _token(Backend(registered.client_id, key, "ES384").form("system/Patient.rs")).status_code == 200


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"jwks": "{not json"}, "This is not JSON"),
        ({}, "one of them"),
        ({"jwks": "JWKS", "jwks_url": "https://ehr.example.org/jwks.json"}, "one of them"),
        ({"jwks": "PRIVATE"}, "a private part"),
        ({"jwks_url": "https://127.0.0.1/jwks.json"}, "private, loopback or reserved"),
    ],
)
def test_what_is_wrong_is_said_and_nothing_is_registered(member_client, tenant_a, data, said):
    key = new_key()
    values = {"JWKS": _public(key), "PRIVATE": json.dumps(KeySet([key]).as_dict(private=True))}
    data = {name: values.get(value, value) for name, value in data.items()}
    response = member_client(Role.TENANT_ADMIN).post(
        "/smart-clients/new/", {"name": "EHR", "scopes": SCOPES, **data}
    )
    assert response.status_code == 400
    assert said in response.content.decode().replace("&#x27;", "'")
    with tenant_context(tenant_a):
        assert not SmartClient.objects.exists()


def test_revoking_ends_the_client_and_its_tokens(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    key = new_key()
    client.post("/smart-clients/new/", {"name": "EHR", "jwks": _public(key), "scopes": SCOPES})
    registered = _registered(tenant_a)
    token = _token(Backend(registered.client_id, key, "RS384").form("system/Patient.rs")).json()[
        "access_token"
    ]

    page = client.post(f"/smart-clients/{registered.pk}/revoke/", follow=True).content.decode()

    assert re.search(r"revoked; 1 live access token", page)
    with tenant_context(tenant_a):
        assert ApiKey.objects.get(prefix=token.split("_")[1]).revoked_at is not None
    assert _token(Backend(registered.client_id, key, "RS384").form("system/Patient.rs")).status_code == 401


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_other_roles_are_refused(member_client, tenant_a, role):
    client = member_client(role)
    key = new_key()
    assert client.get("/smart-clients/").status_code == 403
    response = client.post("/smart-clients/new/", {"name": "EHR", "jwks": _public(key), "scopes": SCOPES})
    assert response.status_code == 403
    with tenant_context(tenant_a):
        assert not SmartClient.objects.exists()

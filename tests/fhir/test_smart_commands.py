"""Operators register and revoke SMART clients from the command line."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from joserfc.jwk import KeySet

from healthmail.accounts.models import SmartClient
from healthmail.tenants.context import tenant_context

from .smart import new_key

pytestmark = pytest.mark.django_db


def test_register_prints_the_client_id_and_revoke_ends_it(tenant_a, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeySet([new_key("ES384")]).as_dict(private=False)))
    out = io.StringIO()
    call_command(
        "smart_client_register",
        tenant=tenant_a.slug,
        name="EHR",
        jwks=jwks,
        scopes="contacts:read",
        stdout=out,
    )
    client_id = out.getvalue().splitlines()[0]
    with tenant_context(tenant_a):
        assert SmartClient.objects.get(client_id=client_id).scopes == ["contacts:read"]
    call_command("smart_client_revoke", tenant=tenant_a.slug, client_id=client_id, stdout=io.StringIO())
    with tenant_context(tenant_a):
        assert SmartClient.objects.get(client_id=client_id).revoked_at is not None


def test_register_refuses_a_private_key_file(tenant_a, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeySet([new_key()]).as_dict(private=True)))
    with pytest.raises(CommandError, match="public keys only"):
        call_command(
            "smart_client_register", tenant=tenant_a.slug, name="EHR", jwks=jwks, scopes="contacts:read"
        )

"""`manage.py create_api_key`: prints the key once, stores only its hash, audited as the system."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from healthmail.accounts.models import ApiKey
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events

pytestmark = pytest.mark.django_db


def _run(*args) -> list[str]:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().splitlines()


def test_prints_the_key_once_and_it_works(api, tenant_a):
    lines = _run("--tenant", "clinic-a", "--scopes", "contacts:read,messages:send", "--name", "EHR bridge")

    assert len(lines) == 2
    plaintext, warning = lines
    assert plaintext.startswith("hm_")
    assert "not shown again" in warning
    prefix, secret = plaintext.split("_")[1], plaintext.split("_", 2)[2]
    with tenant_context(tenant_a):
        stored = ApiKey.objects.get(prefix=prefix)
    assert stored.name == "EHR bridge"
    assert stored.scopes == ["contacts:read", "messages:send"]
    assert stored.expires_at is None
    assert secret not in stored.secret_hash

    response = api(plaintext).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["tenant"]["slug"] == "clinic-a"

    created = audit_events(tenant=tenant_a, action="api_key.create")
    assert [(e.actor_type, e.actor_id, e.details["prefix"]) for e in created] == [
        ("system", "manage.py create_api_key", prefix)
    ]
    assert secret not in str(created[0].details)


def test_expiry_in_days(tenant_a):
    plaintext = _run("--tenant", "clinic-a", "--scopes", "events:write", "--expires-days", "30")[0]
    with tenant_context(tenant_a):
        stored = ApiKey.objects.get(prefix=plaintext.split("_")[1])
    expected = timezone.now() + datetime.timedelta(days=30)
    assert abs(stored.expires_at - expected) < datetime.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "no-such-clinic", "--scopes", "contacts:read"], "No tenant"),
        (
            ["--tenant", "clinic-a", "--scopes", "contacts:read,admin:everything"],
            "Unknown scopes: admin:everything",
        ),
        (["--tenant", "clinic-a", "--scopes", " , "], "at least one scope"),
        (["--tenant", "clinic-a", "--scopes", "contacts:read", "--expires-days", "0"], "at least 1"),
    ],
)
def test_refuses_bad_input_without_creating_a_key(tenant_a, args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)
    with tenant_context(tenant_a):
        assert not ApiKey.objects.exists()

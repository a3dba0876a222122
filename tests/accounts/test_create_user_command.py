"""manage.py create_user: a person who can sign in at once, for scripted deployments."""

import io
import re
from base64 import b32decode
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.oath import TOTP

from healthmail.accounts.membership import memberships_of
from healthmail.accounts.models import Membership, User
from healthmail.tenants.context import tenant_context

from .conftest import events

pytestmark = pytest.mark.django_db

STRONG = "a long enough deployment password"


def _run(*args) -> str:
    out = io.StringIO()
    call_command("create_user", *args, stdout=out)
    return out.getvalue()


def test_creates_member_with_authenticator_that_signs_in(tenant_a):
    output = _run(
        "--tenant",
        tenant_a.slug,
        "--role",
        "tenant_admin",
        "--email",
        "Ops@Clinic.example",
        "--password",
        STRONG,
    )
    uri = re.search(r"otpauth://\S+", output).group(0)
    assert "Password:" not in output
    user = User.objects.get(username="ops@clinic.example")
    with tenant_context(tenant_a):
        assert Membership.objects.get(user=user).role == "tenant_admin"
    assert user.totpdevice_set.get().confirmed
    event = events("user.provision", tenant=tenant_a)[0]
    assert (event.actor_type, event.actor_id) == ("system", "create_user")

    secret = parse_qs(urlparse(uri).query)["secret"][0]
    client = Client()
    assert client.post("/login/", {"email": "ops@clinic.example", "password": STRONG}).url == "/mfa/verify/"
    code = f"{TOTP(b32decode(secret)).token():06d}"
    assert client.post("/mfa/verify/", {"code": code}).url == "/"
    assert client.get("/").status_code == 200


def test_platform_admin_without_tenant_gets_a_generated_password(db):
    output = _run("--platform-admin", "--email", "root@platform.example")
    password = re.search(r"Password: (\S+)", output).group(1)
    user = User.objects.get(username="root@platform.example")
    assert user.is_platform_admin
    assert user.check_password(password)
    assert memberships_of(user) == []
    assert len(events("user.provision", tenant=None)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "a@b.example"], "either --tenant"),
        (
            ["--platform-admin", "--tenant", "clinic-a", "--role", "marketer", "--email", "a@b.example"],
            "either",
        ),
        (["--tenant", "clinic-a", "--email", "a@b.example"], "--role is required"),
        (["--tenant", "nowhere", "--role", "marketer", "--email", "a@b.example"], "No tenant"),
        (["--platform-admin", "--email", "a@b.example", "--password", "short"], "too short"),
    ],
)
def test_refuses_bad_usage(tenant_a, args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)
    assert not User.objects.filter(username="a@b.example").exists()


def test_refuses_an_existing_account(tenant_a):
    _run("--platform-admin", "--email", "dup@platform.example")
    with pytest.raises(CommandError, match="already exists"):
        _run("--tenant", tenant_a.slug, "--role", "marketer", "--email", "dup@platform.example")

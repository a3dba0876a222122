"""Password, then TOTP or a backup code; first-time enrolment; replay and lockout."""

import re
from base64 import b32decode

import pytest
from django.conf import settings
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from healthmail.accounts import signin
from healthmail.accounts.roles import Role
from tests.factories import PASSWORD, MembershipFactory, UserFactory, confirmed_totp, totp_code

from .conftest import events

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(tenant_a):
    membership = MembershipFactory(tenant=tenant_a, role=Role.MARKETER)
    return membership.user


def _password(client, user, password=PASSWORD):
    return client.post("/login/", {"email": user.email, "password": password})


def _h1(response) -> str:
    return re.search(r"<h1[^>]*>(.*?)</h1>", response.content.decode(), re.S).group(1).strip()


def _wrong_code(device) -> str:
    valid = {totp_code(device, step_offset=offset) for offset in (-1, 0, 1)}
    return next(c for c in (totp_code(device, step_offset=20 + i) for i in range(5)) if c not in valid)


def test_password_then_totp_reaches_the_role_home(client, marketer, tenant_a):
    device = confirmed_totp(marketer)
    first_session = client.session.session_key

    response = _password(client, marketer)
    assert response.status_code == 302
    assert response.url == "/mfa/verify/"
    password_session = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert password_session != first_session  # new id at sign-in (no session fixation)
    assert client.get("/").url == "/mfa/verify/"  # not in yet

    response = client.post("/mfa/verify/", {"code": totp_code(device)})
    assert response.status_code == 302
    assert response.url == "/"
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != password_session  # again after MFA
    home = client.get("/")
    assert home.status_code == 200
    assert _h1(home) == "Marketing"
    assert client.session["auth_at"] > 0
    assert len(events("auth.login", tenant=tenant_a, outcome="success")) == 1
    assert len(events("auth.mfa_verify", tenant=tenant_a, outcome="success")) == 1


def test_sign_in_returns_to_the_page_first_asked_for(client, marketer):
    device = confirmed_totp(marketer)
    assert client.get("/members/").url == "/login/?next=%2Fmembers%2F"
    client.post("/login/?next=%2Fmembers%2F", {"email": marketer.email, "password": PASSWORD})
    assert client.post("/mfa/verify/", {"code": totp_code(device)}).url == "/members/"


def test_sign_in_never_redirects_off_site(client, marketer):
    device = confirmed_totp(marketer)
    client.post("/login/?next=https://evil.example/", {"email": marketer.email, "password": PASSWORD})
    assert client.post("/mfa/verify/", {"code": totp_code(device)}).url == "/"


def test_email_is_case_insensitive(client, marketer):
    confirmed_totp(marketer)
    response = client.post("/login/", {"email": marketer.email.upper(), "password": PASSWORD})
    assert response.url == "/mfa/verify/"


@pytest.mark.parametrize("which", ["wrong password", "unknown email"])
def test_wrong_credentials_get_one_generic_answer(client, marketer, tenant_a, which):
    email = marketer.email if which == "wrong password" else "nobody@staff.example.org"
    response = client.post("/login/", {"email": email, "password": "not the password"})
    assert response.status_code == 200
    assert "The email or password is incorrect." in response.content.decode()
    assert "_auth_user_id" not in client.session
    trail = events("auth.login", tenant=tenant_a if which == "wrong password" else None, outcome="denied")
    assert len(trail) == 1
    assert trail[0].reason == "wrong email or password"
    assert email not in str(trail[0].details)  # a keyed fingerprint, not the address


def test_wrong_totp_is_refused_and_audited(client, marketer, tenant_a):
    device = confirmed_totp(marketer)
    _password(client, marketer)
    response = client.post("/mfa/verify/", {"code": _wrong_code(device)})
    assert response.status_code == 200
    assert "That code is not valid" in response.content.decode()
    assert client.get("/").url == "/mfa/verify/"
    assert len(events("auth.mfa_verify", tenant=tenant_a, outcome="denied")) == 1


def test_a_totp_code_cannot_be_replayed(fresh_client, marketer, tenant_a):
    device = confirmed_totp(marketer)
    code = totp_code(device)
    first = fresh_client()
    _password(first, marketer)
    assert first.post("/mfa/verify/", {"code": code}).url == "/"

    second = fresh_client()
    _password(second, marketer)
    response = second.post("/mfa/verify/", {"code": code})
    assert response.status_code == 200
    assert "That code is not valid" in response.content.decode()
    assert second.get("/").url == "/mfa/verify/"
    assert events("auth.mfa_verify", tenant=tenant_a, outcome="denied")[0].reason == "wrong or reused code"


def test_a_backup_code_works_once(fresh_client, marketer):
    confirmed_totp(marketer)
    codes = signin.backup_codes_generate(actor=signin.Actor.for_user(marketer), user=marketer)
    assert len(codes) == 10
    assert len(set(codes)) == 10

    first = fresh_client()
    _password(first, marketer)
    assert first.post("/mfa/verify/", {"code": codes[0].upper()}).url == "/"
    assert first.get("/").status_code == 200
    assert StaticToken.objects.filter(device__user=marketer).count() == 9

    second = fresh_client()
    _password(second, marketer)
    response = second.post("/mfa/verify/", {"code": codes[0]})
    assert response.status_code == 200
    assert second.get("/").url == "/mfa/verify/"


def test_failed_passwords_pause_that_account_from_that_address(fresh_client, marketer, tenant_a):
    confirmed_totp(marketer)
    client = fresh_client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert _password(client, marketer, "not the password").status_code == 200
    response = _password(client, marketer)  # even the right password is refused now
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert len(events("auth.login", tenant=tenant_a, outcome="denied")) == settings.LOGIN_FAILURE_LIMIT
    refusals = events("auth.login", tenant=None, outcome="denied")
    assert [e.reason for e in refusals] == ["too many failed attempts"]


def test_an_attacker_cannot_lock_the_real_user_out_from_another_address(fresh_client, marketer):
    """The attack the old account-wide lock allowed: anyone knowing an address could lock it."""
    device = confirmed_totp(marketer)
    attacker = fresh_client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT * 3):
        attacker.post("/login/", {"email": marketer.email, "password": "guess" * 3})
    assert _password(attacker, marketer).status_code == 429  # the attacker is paused

    user = fresh_client()  # the real user, from their own network
    assert _password(user, marketer).url == "/mfa/verify/"
    assert user.post("/mfa/verify/", {"code": totp_code(device)}).url == "/"
    assert user.get("/").status_code == 200


def test_the_pause_doubles_with_each_further_failure_and_then_lifts(fresh_client, marketer, monkeypatch):
    from healthmail.accounts import throttle

    confirmed_totp(marketer)
    clock = [1_000_000.0]
    monkeypatch.setattr(throttle, "_now", lambda: clock[0])
    client = fresh_client()
    base = settings.LOGIN_BACKOFF_BASE_SECONDS
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        _password(client, marketer, "not the password")
    for pause in (base, 2 * base, 4 * base):
        clock[0] += pause - 1
        assert _password(client, marketer).status_code == 429, pause  # still paused
        clock[0] += 2
        # The pause is over: one more wrong guess is heard (and refused), and pauses twice as long.
        assert _password(client, marketer, "not the password").status_code == 200, pause
    clock[0] += 8 * base + 1
    assert _password(client, marketer).status_code == 302  # right password once the pause lifts


def test_the_pause_never_exceeds_the_maximum():
    from healthmail.accounts.throttle import backoff_seconds

    limit = settings.LOGIN_FAILURE_LIMIT
    assert backoff_seconds(limit - 1, limit=limit) == 0
    assert backoff_seconds(limit, limit=limit) == settings.LOGIN_BACKOFF_BASE_SECONDS
    assert backoff_seconds(limit + 1, limit=limit) == 2 * settings.LOGIN_BACKOFF_BASE_SECONDS
    assert backoff_seconds(limit + 1000, limit=limit) == settings.LOGIN_BACKOFF_MAX_SECONDS


def test_one_address_guessing_across_accounts_is_paused_for_all(fresh_client, marketer):
    confirmed_totp(marketer)
    client = fresh_client()
    for n in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT):
        client.post("/login/", {"email": f"guess{n}@staff.example.org", "password": "x" * 12})
    assert _password(client, marketer).status_code == 429
    assert _password(fresh_client(), marketer).status_code == 302  # the account itself is fine


def test_totp_failures_count_towards_lockout(fresh_client, marketer):
    device = confirmed_totp(marketer)
    client = fresh_client()
    _password(client, marketer)
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert client.post("/mfa/verify/", {"code": _wrong_code(device)}).status_code == 200
    response = client.post("/mfa/verify/", {"code": totp_code(device)})
    assert response.status_code == 429
    assert client.get("/").url == "/mfa/verify/"


def test_first_sign_in_enrols_an_authenticator_and_shows_backup_codes(client, marketer, tenant_a):
    response = _password(client, marketer)
    assert response.url == "/mfa/setup/"
    assert client.get("/mfa/verify/").url == "/mfa/setup/"
    page = client.get("/mfa/setup/")
    html = page.content.decode()
    assert page["Cache-Control"] == "no-store"
    assert "<svg" in html
    assert "http" not in re.search(r"<svg.*?</svg>", html, re.S).group(0).replace("http://www.w3.org", "")
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    assert client.get("/mfa/setup/").content.decode().count(secret[:4]) >= 1  # same secret on reload

    totp = TOTP(b32decode(secret))
    response = client.post("/mfa/setup/", {"code": f"{totp.token():06d}"})
    assert response.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())
    assert len(codes) == 10
    assert TOTPDevice.objects.get(user=marketer).confirmed
    assert client.get("/").status_code == 200
    assert len(events("mfa.enrol", tenant=tenant_a, outcome="success")) == 1
    assert len(events("mfa.backup_codes_generate", tenant=tenant_a)) == 1


def test_enrolment_rejects_a_wrong_code(client, marketer):
    _password(client, marketer)
    client.get("/mfa/setup/")
    device = TOTPDevice.objects.get(user=marketer)
    response = client.post("/mfa/setup/", {"code": _wrong_code(device)})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get("/").url == "/mfa/verify/"


def test_enrolled_user_cannot_reach_enrolment_to_replace_the_device(client, marketer):
    confirmed_totp(marketer)
    _password(client, marketer)
    assert client.get("/mfa/setup/").url == "/mfa/verify/"
    assert client.post("/mfa/setup/", {"code": "123456"}).url == "/mfa/verify/"


def test_sign_out_is_post_only_and_audited(client, marketer, tenant_a):
    device = confirmed_totp(marketer)
    _password(client, marketer)
    client.post("/mfa/verify/", {"code": totp_code(device)})
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.url == "/login/"
    assert client.get("/").url.startswith("/login/")
    assert len(events("auth.logout", tenant=tenant_a)) == 1


def test_inactive_account_cannot_sign_in(client):
    user = UserFactory(is_active=False)
    response = _password(client, user)
    assert response.status_code == 200
    assert "The email or password is incorrect." in response.content.decode()

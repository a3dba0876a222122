"""SMART Backend Services: a registered client trades a signed assertion for a short-lived token the
FHIR endpoints accept; forged, replayed, expired, misdirected and foreign assertions get nothing."""

from __future__ import annotations

import base64
import json
import secrets
import time
from urllib.parse import urlencode

import pytest
from django.test import Client
from joserfc.jwk import RSAKey

from healthmail.accounts.models import ApiKey
from healthmail.accounts.selectors import api_key_list
from healthmail.accounts.smart import smart_client_revoke
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events

from .examples import us_patient
from .smart import TOKEN_URL, new_key, register

pytestmark = pytest.mark.django_db
SCOPES = ["contacts:read", "contacts:write", "contacts:phi", "messages:send", "messages:read"]


def _token(form: dict, address: str = ""):
    # Each call from its own documentation address unless told: failures are counted per address.
    address = address or f"198.51.100.{secrets.randbelow(250) + 1}"
    form_type = "application/x-www-form-urlencoded"
    return Client().post("/api/oauth/token", urlencode(form), content_type=form_type, REMOTE_ADDR=address)


def _fhir(token: str):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/fhir+json")
    return client


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_signed_assertion_buys_a_short_token_the_fhir_endpoint_accepts(tenant_a, alg, settings):
    settings.SMART_ACCESS_TOKEN_SECONDS = 120
    backend = register(tenant_a, scopes=SCOPES, alg=alg)
    response = _token(backend.form())
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 120
    assert body["scope"] == "system/Patient.rs system/Patient.cu"
    assert response["Cache-Control"].startswith("no-store") or "no-store" in response["Cache-Control"]
    created = _fhir(body["access_token"]).post(
        "/api/fhir/r4/Patient", json.dumps(us_patient()), content_type="application/fhir+json"
    )
    assert created.status_code == 201, created.content
    prefix = body["access_token"].split("_")[1]
    with tenant_context(tenant_a):
        token = ApiKey.objects.get(prefix=prefix)
    assert sorted(token.scopes) == ["contacts:phi", "contacts:read", "contacts:write"]
    assert 110 <= (token.expires_at - token.created_at).total_seconds() <= 121
    assert token not in api_key_list(tenant=tenant_a)  # the keys page lists what people made


def test_the_token_carries_only_what_was_asked_and_registered(tenant_a):
    backend = register(tenant_a, scopes=["contacts:read", "contacts:phi"])
    response = _token(backend.form(scope="system/Patient.rs system/CommunicationRequest.c"))
    assert response.json()["scope"] == "system/Patient.rs"
    token = response.json()["access_token"]
    refused = _fhir(token).post(
        "/api/fhir/r4/Patient", json.dumps(us_patient()), content_type="application/fhir+json"
    )
    assert refused.status_code == 403
    nothing = _token(backend.form(scope="system/CommunicationRequest.c"))
    assert (nothing.status_code, nothing.json()["error"]) == (400, "invalid_scope")
    assert _token(backend.form(scope="user/Patient.rs")).json()["error"] == "invalid_scope"


def _none_alg(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_attacks_get_invalid_client_and_no_token(tenant_a, tenant_b):
    backend = register(tenant_a, scopes=SCOPES)
    now = int(time.time())
    claims = {
        "iss": backend.client_id,
        "sub": backend.client_id,
        "aud": TOKEN_URL,
        "exp": now + 200,
        "jti": "x1",
    }
    forged = register(tenant_a, scopes=SCOPES)
    forged.client_id = backend.client_id  # a key of its own, claiming to be the other client
    wrong_kid = register(tenant_a, scopes=SCOPES)
    wrong_kid.client_id = backend.client_id  # an attacker's own key under the registered key's kid
    wrong_kid.key = RSAKey.generate_key(2048, parameters={"kid": backend.key.kid})
    foreign = register(tenant_b, scopes=SCOPES)
    replayed = backend.form()
    assert _token(replayed).status_code == 200
    attacks = {
        "alg none": {**backend.form(), "client_assertion": _none_alg(claims)},
        "wrong key, same kid": wrong_kid.form(),
        "key of another client": forged.form(),
        "replayed jti": replayed,
        "expired": backend.form(exp=now - 120),
        "exp over five minutes away": backend.form(exp=now + 3600),
        "no exp": backend.form(exp=None),
        "no jti": backend.form(jti=None),
        "audience of another server": backend.form(aud="https://other.example/token"),
        "sub is not the client": backend.form(sub=foreign.client_id),
        "foreign tenant's client id with our key": {
            **backend.form(),
            "client_assertion": backend.assertion(iss=foreign.client_id, sub=foreign.client_id),
        },
        "unknown client": backend.form(iss="smart_nobody", sub="smart_nobody"),
        "garbage": {**backend.form(), "client_assertion": "a.b.c"},
    }
    for name, form in attacks.items():
        response = _token(form)
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client"), name
        assert "access_token" not in response.json(), name
    with tenant_context(tenant_a):
        assert ApiKey.objects.filter(smart_client__isnull=False).count() == 1  # the one honest request
    denied = audit_events(tenant=tenant_a, action="smart.token", outcome="denied")
    assert len(denied) >= 8
    assert any("already used" in event.reason for event in denied)


def test_protocol_errors_are_oauth_errors(tenant_a):
    backend = register(tenant_a, scopes=SCOPES)
    assert _token({**backend.form(), "grant_type": "password"}).json()["error"] == "unsupported_grant_type"
    assert _token({**backend.form(), "client_assertion_type": "x"}).json()["error"] == "invalid_request"
    as_json = Client().post("/api/oauth/token", json.dumps(backend.form()), content_type="application/json")
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    assert Client().get("/api/oauth/token").status_code == 405


def test_revoking_a_client_ends_its_tokens_at_once(tenant_a):
    backend = register(tenant_a, scopes=SCOPES)
    token = _token(backend.form()).json()["access_token"]
    with tenant_context(tenant_a):
        from healthmail.accounts.models import SmartClient

        client = SmartClient.objects.get(client_id=backend.client_id)
    assert smart_client_revoke(actor=Actor.system("tests"), tenant=tenant_a, client=client) == 1
    response = _fhir(token).get("/api/fhir/r4/Patient", {"email": "a@patients.test"})
    assert response.status_code == 401
    again = _token(backend.form())
    assert (again.status_code, again.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    ("jwks", "code"),
    [
        ({"keys": []}, "jwks_invalid"),
        ({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}, "jwks_invalid"),  # no kid
        (None, "jwks_private"),
        ("weak", "jwks_weak"),
    ],
)
def test_registration_takes_strong_public_keys_only(tenant_a, jwks, code):
    from joserfc.jwk import KeySet

    if jwks is None:
        jwks = KeySet([new_key()]).as_dict(private=True)
    elif jwks == "weak":
        jwks = KeySet([RSAKey.generate_key(1024, parameters={"kid": "small"}, private=True)]).as_dict(
            private=False
        )
    from healthmail.accounts.smart import smart_client_register

    with pytest.raises(ApplicationError) as refused:
        smart_client_register(
            actor=Actor.system("tests"), tenant=tenant_a, name="x", jwks=jwks, scopes=SCOPES
        )
    assert refused.value.code == code


def test_discovery_documents_name_the_token_endpoint():
    client = Client()
    config = client.get("/api/fhir/r4/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    metadata = client.get("/api/fhir/r4/metadata")
    assert metadata.status_code == 200
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    statement = CapabilityStatement.model_validate(metadata.json())
    [rest] = statement.rest
    assert {r.type for r in rest.resource} == {"Patient", "CommunicationRequest", "Communication", "Consent"}
    assert rest.security.extension[0].extension[0].valueUri == TOKEN_URL


def test_an_address_that_keeps_failing_is_refused_before_any_check(tenant_a, settings):
    settings.API_KEY_FAILURE_LIMIT = 3
    backend = register(tenant_a, scopes=SCOPES)
    bad = [backend.form(aud="https://other.example/token") for _ in range(4)]
    statuses = [_token(form, "203.0.113.77").status_code for form in bad]
    assert statuses == [401, 401, 401, 429]
    good = _token(backend.form(), "203.0.113.77")
    assert (good.status_code, good["Retry-After"]) == (429, str(settings.API_KEY_FAILURE_WINDOW_SECONDS))
    assert _token(backend.form(), "203.0.113.78").status_code == 200

"""Property-based fuzz of every FHIR interaction (RELIABILITY S4 for the routes the OpenAPI schema and
so schemathesis do not cover), over HTTP against a live server.

Each case draws a credential (the interaction's own scopes, every scope, a SMART access token, a key
lacking the scope, another tenant's key, an expired key, none, garbage), the resource ids in the URL
(own, another tenant's, unknown, malformed), the body (a resource shaped as fhir.resources accepts it,
the same resource damaged: wrong types, unknown elements, huge or deeply nested values, NUL and
unpaired surrogates, the wrong resourceType, bad references; or any JSON or bytes at all), the
Content-Type and, for searches, the parameters. Every answer must keep these promises:
- never a 5xx;
- every error is an OperationOutcome (application/fhir+json, valid for the FHIR model) whose issue
  type says its status;
- no auth bypass: no or a bad credential is 401, a key without the interaction's scope 403, never 2xx;
- another tenant's resource is 404 (read, update) or found by no search.

`make test` runs EXAMPLES cases per interaction; `make schemathesis` more (FHIR_FUZZ_EXAMPLES)."""

from __future__ import annotations

import datetime
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from django.utils import timezone
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import HealthCheck, given, settings

from fhir_api.outcomes import _ISSUE_TYPES
from healthmail.accounts.api_keys import SCOPES, api_key_create, failure_counter
from healthmail.accounts.models import ApiKey
from healthmail.actors import Actor
from healthmail.outages import shared_or_local
from healthmail.tenants.context import tenant_context
from tests.api.objects import message_id
from tests.factories import BaaFactory, ContactFactory, TenantFactory
from tests.live_server import served_over_http

from .fuzz_calls import FHIR, INTERACTIONS, Call, Interaction, World, calls, garbage_tokens, percent
from .smart import new_key, public_jwks

EXAMPLES = int(os.environ.get("FHIR_FUZZ_EXAMPLES") or 60)


def _key(tenant, scopes, **extra) -> str:
    issued = api_key_create(
        actor=Actor.system("tests"), tenant=tenant, name="FHIR fuzz", scopes=scopes, **extra
    )
    return issued.plaintext


def _expired_key(tenant) -> str:
    plaintext = _key(tenant, list(SCOPES))
    with tenant_context(tenant):
        ApiKey.objects.filter(prefix=plaintext.split("_")[1]).update(
            expires_at=timezone.now() - datetime.timedelta(minutes=1)
        )
    return plaintext


def _smart_token(url: str, tenant) -> tuple[str, frozenset[str]]:
    """A SMART access token obtained as an integrator does: a signed assertion at the token endpoint."""
    from joserfc import jwt

    from healthmail.accounts.smart import ASSERTION_TYPE, smart_client_register

    key = new_key("ES384")
    client = smart_client_register(
        actor=Actor.system("tests"),
        tenant=tenant,
        name="FHIR fuzz backend",
        jwks=public_jwks(key),
        scopes=["contacts:read", "contacts:phi", "messages:read"],
    )
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": f"{url}/api/oauth/token",
        "exp": int(time.time()) + 240,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode({"alg": "ES384", "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=["ES384"])
    answer = requests.post(
        f"{url}/api/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Patient.rs system/Communication.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    with tenant_context(tenant):  # short-lived by design; this one has to outlast the run
        ApiKey.objects.filter(prefix=token.split("_")[1]).update(
            expires_at=timezone.now() + datetime.timedelta(hours=2)
        )
    return token, frozenset({"contacts:read", "contacts:phi", "messages:read"})


@pytest.fixture(scope="module")
def server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    with served_over_http(django_db_blocker) as url:
        yield url


@pytest.fixture(scope="module")
def world(server_url, django_db_blocker) -> Iterator[World]:
    with django_db_blocker.unblock():
        tenants = []
        for name in ("fuzzed", "foreign"):
            slug = f"fuzz-{name}-{uuid.uuid4().hex[:8]}"
            tenant = TenantFactory(name=f"FHIR fuzz {slug}", slug=slug)
            BaaFactory(tenant=tenant)
            tenants.append(tenant)
        mine, other = tenants
        foreign_mrn = f"F-{uuid.uuid4().hex[:8]}"
        own_patient = ContactFactory(tenant=mine, email=f"own.{uuid.uuid4().hex[:8]}@example.org")
        foreign_patient = ContactFactory(
            tenant=other,
            email=f"foreign.{uuid.uuid4().hex[:8]}@example.org",
            external_ids={"mrn": foreign_mrn},
        )
        smart, smart_scopes = _smart_token(server_url, mine)
        keys = {
            "all": _key(mine, list(SCOPES)),
            "foreign": _key(other, list(SCOPES)),
            "expired": _expired_key(mine),
            "smart": smart,
        }
        for interaction in INTERACTIONS.values():
            if interaction.scopes:
                keys[f"own:{interaction.method} {interaction.path}"] = _key(mine, list(interaction.scopes))
                lacking = [s for s in SCOPES if s not in interaction.scopes]
                keys[f"lacking:{interaction.method} {interaction.path}"] = _key(mine, lacking)
        yield World(
            url=server_url,
            keys={name: f"Bearer {key}" for name, key in keys.items()},
            smart_scopes=smart_scopes,
            own={"Patient": str(own_patient.pk), "Communication": str(message_id(mine, None))},
            foreign={"Patient": str(foreign_patient.pk), "Communication": str(message_id(other, None))},
            foreign_mrn=foreign_mrn,
            session=requests.Session(),
        )


@pytest.fixture
def generous_limits(settings):
    """Hundreds of calls with a few keys, garbage credentials from one address: the rate limit and
    the failed-key lockout (tested on their own in tests/api) would answer 429 to most of the run."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "100000/min"}}
    settings.API_KEY_FAILURE_LIMIT = 1_000_000
    yield
    shared_or_local(lambda cache: cache.delete(failure_counter("127.0.0.1")))


def _send(world: World, interaction: Interaction, call: Call, authorization: str) -> requests.Response:
    url = world.url + call.base + call.path
    if call.query:
        url += "?" + "&".join(f"{percent(key)}={percent(value)}" for key, value in call.query)
    headers = {"Accept": call.accept}
    if authorization:
        headers["Authorization"] = authorization
    if call.content_type:
        headers["Content-Type"] = call.content_type
    if call.if_match:
        headers["If-Match"] = 'W/"1"'
    return world.session.request(interaction.method, url, data=call.body or None, headers=headers, timeout=60)


def assert_promises_kept(
    world: World, interaction: Interaction, call: Call, response: requests.Response
) -> None:
    status = response.status_code
    where = (
        f"{interaction.method} {call.base}{call.path[:200]} as {call.credential}: {status} "
        f"{response.text[:500]}"
    )
    assert status < 500, where
    if status >= 400:
        assert response.headers["Content-Type"] == FHIR, where
        outcome = response.json()
        OperationOutcome.model_validate(outcome)
        assert outcome["issue"][0]["code"] == _ISSUE_TYPES.get(status, "exception"), where
        for leak in ("Traceback", 'File "', "django.", "psycopg"):
            assert leak not in response.text, where
    if not interaction.scopes:
        return
    held = set(SCOPES) if call.credential in ("all", "foreign") else set()
    if call.credential == "smart":
        held = set(world.smart_scopes)
    elif call.credential.startswith("own:"):
        held = set(interaction.scopes)
    elif call.credential.startswith("lacking:"):
        held = set(SCOPES) - set(interaction.scopes)
    if call.credential in ("none", "garbage", "expired"):
        assert status == 401, where
    elif not set(interaction.scopes) <= held:
        assert status == 403, where
    other_tenants = (call.id_kind == "foreign") != (call.credential == "foreign") and call.id_kind in (
        "own",
        "foreign",
    )
    if other_tenants and status not in (401, 403):
        assert status == 404, where  # another tenant's object is not found, whatever else the call says
    if interaction.path == "Patient" and interaction.method == "GET" and status == 200:
        assert world.foreign["Patient"] not in response.text, where


@pytest.mark.parametrize("name", list(INTERACTIONS))
def test_every_fhir_interaction_keeps_its_promises(world, generous_limits, name):
    interaction = INTERACTIONS[name]

    @given(call=calls(world, name), garbage=garbage_tokens)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        database=None,
    )
    def run(call: Call, garbage: str) -> None:
        tokens = {"none": "", "garbage": garbage}
        authorization = tokens.get(call.credential, world.keys.get(call.credential, ""))
        response = _send(world, interaction, call, authorization)
        seen[response.status_code] += 1
        assert_promises_kept(world, interaction, call, response)

    seen: Counter[int] = Counter()
    run()
    print(name, dict(sorted(seen.items())))
    # The run reached the view, not only the door: answers other than refusals of the credential or
    # the media type (a fuzz that never gets past authentication proves nothing about the views).
    assert set(seen) - {401, 403, 406, 415}, seen

"""A SMART backend client as an integrator builds one: a key pair, a registration, signed client
assertions (joserfc on the client side as well), and a fhirclient session authorized with them.
Shared by the live-server test (tests/fhir/test_fhir_client.py) and the `make run` acceptance test."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from fhirclient.client import FHIRClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from healthmail.accounts.smart import ALGORITHMS, ASSERTION_TYPE, smart_client_register
from healthmail.actors import Actor

TOKEN_URL = "http://testserver/api/oauth/token"
# What the integrator's whole path needs: upsert a Patient, request a Communication, read it back.
INTEGRATOR_SCOPES = (
    "system/Patient.rs system/Patient.cu system/CommunicationRequest.c system/Communication.rs"
)


@dataclass
class Backend:
    client_id: str
    key: object
    alg: str

    def assertion(self, **overrides) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        header = {"alg": self.alg, "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(
            header, {k: v for k, v in claims.items() if v is not None}, self.key, algorithms=ALGORITHMS
        )

    def form(self, scope: str = "system/Patient.rs system/Patient.cu", **overrides) -> dict:
        return {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(**overrides),
        }


def new_key(alg: str = "RS384"):
    kid = uuid.uuid4().hex[:12]
    if alg == "ES384":
        return ECKey.generate_key("P-384", parameters={"kid": kid})
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def public_jwks(key) -> dict:
    """The JWK Set the integrator hands over at registration: public halves only."""
    return KeySet([key]).as_dict(private=False)


def register(tenant, *, scopes: list[str], alg: str = "RS384", name: str = "EHR backend") -> Backend:
    key = new_key(alg)
    client = smart_client_register(
        actor=Actor.system("tests"),
        tenant=tenant,
        name=name,
        jwks=public_jwks(key),
        scopes=scopes,
    )
    return Backend(client.client_id, key, alg)


def fhir_client(
    url: str, backend: Backend, scope: str = INTEGRATOR_SCOPES, base: str = "/api/fhir/r4/"
) -> FHIRClient:
    """A fhirclient session for a backend service at `url` + `base`: it reads the CapabilityStatement,
    finds the token endpoint there and gets a token (client_credentials with a signed assertion)."""
    assertion = backend.assertion(aud=f"{url}/api/oauth/token", exp=int(time.time()) + 240)
    settings = {
        "app_id": backend.client_id,
        "api_base": f"{url}{base}",
        "jwt_token": assertion,
        "scope": scope,
    }
    client = FHIRClient(settings=settings, save_func=lambda state: None)
    client.wants_patient = False  # a backend service: no patient launch
    client.prepare()
    client.server.authorize()
    return client


def delivery_attempt(communication) -> dict:
    """The delivery-evidence attempt extension of a Communication, by sub-extension url; {} if none."""
    evidence = {e.url.rsplit("/", 1)[-1]: e for e in communication.extension or []}
    if "delivery-evidence-attempt" not in evidence:
        return {}
    return {x.url: x for x in evidence["delivery-evidence-attempt"].extension}

"""A SMART backend client as an integrator builds one: a key pair, a registration, and signed
client assertions (joserfc on the client side as well)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from healthmail.accounts.smart import ALGORITHMS, ASSERTION_TYPE, smart_client_register
from healthmail.actors import Actor

TOKEN_URL = "http://testserver/api/oauth/token"


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


def register(tenant, *, scopes: list[str], alg: str = "RS384", name: str = "EHR backend") -> Backend:
    key = new_key(alg)
    client = smart_client_register(
        actor=Actor.system("tests"),
        tenant=tenant,
        name=name,
        jwks=KeySet([key]).as_dict(private=False),
        scopes=scopes,
    )
    return Backend(client.client_id, key, alg)

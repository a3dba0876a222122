"""What the schemathesis and scope tests share: the schema as served, the checks' configuration, the
Authorization header and the number of examples."""

from __future__ import annotations

import json
import os

import schemathesis
from django.conf import settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.core.parameters import ParameterLocation

# An invalid body larger than the API takes (2 MiB) is refused with 413 before it is parsed: as much
# a rejection as 400/422, and schemathesis does not count it as one by default.
REJECTIONS = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
# Left out: `positive_data_acceptance` (a schema-valid request must not get a 4xx). Our requests name
# objects (a contact id, a template, a cursor given out earlier) and obey rules JSON Schema cannot
# state (consent, state law, a sendable address); the documented answer to those is 404 or 422.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": REJECTIONS},
            "positive_data_acceptance": {"enabled": False},
        }
    }
)


def _header_values(response, name: str) -> list[str]:
    return [
        part.strip().lower() for value in response.headers.get(name.lower(), []) for part in value.split(",")
    ]


@schemathesis.check
def no_store(ctx, response, case) -> None:
    """Every API answer, error or not, carries `Cache-Control: no-store` (healthmail/no_store.py): any
    of them may hold PHI, and none may be kept by a browser or a proxy."""
    if "no-store" not in _header_values(response, "Cache-Control"):
        raise AssertionError(f"{case.operation.label} answered {response.status_code} without no-store")


@schemathesis.check
def rate_limit_announced(ctx, response, case) -> None:
    """Every successful answer says how much of the key's rate limit is left (RateLimit-Limit,
    -Remaining, -Reset; healthmail/api/middleware.py) while a limit is configured, so a client can slow
    down before its first 429. The schema cannot require them: they depend on API_RATE_LIMIT."""
    if not 200 <= response.status_code < 300:
        return
    if not settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get("api_key"):
        return
    missing = [
        name
        for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
        if not response.headers.get(name.lower())
    ]
    if missing:
        raise AssertionError(f"{case.operation.label} answered {response.status_code} without {missing}")


def served_schema() -> dict:
    """The document /api/schema/ serves, as plain JSON."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


def examples(default: int) -> int:
    """SCHEMATHESIS_EXAMPLES (`make schemathesis`: a few hundred per operation), else `default`."""
    return int(os.environ.get("SCHEMATHESIS_EXAMPLES") or default)


def authorization(case, key: str) -> dict:
    """Our key, except for a case whose negated part is the missing Authorization header itself:
    adding it back would send a valid request that the check then counts as invalid data accepted."""
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    sent = {name.lower() for name in case.headers or {}}
    if headers is not None and headers.mode.is_negative and "authorization" not in sent:
        return {}
    return {"Authorization": f"Bearer {key}"}

"""Schemathesis over every operation of the OpenAPI schema (RELIABILITY S4, bounded for `make test`):
generated requests, valid and invalid, sent in-process with a key holding every scope. Fails on any
5xx, any answer the schema does not describe (status, headers, content type, body) and any invalid
request that is accepted.

Left out: `positive_data_acceptance` (a schema-valid body must not get a 4xx). Our bodies name
objects (a contact id, a template) and obey rules JSON Schema cannot state (consent, state law, a
sendable address); the documented answer to those is 404 or 422, which that check counts as failure."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from healthmail.accounts.api_keys import SCOPES

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 20


def _served_schema() -> dict:
    """The document /api/schema/ serves, as plain JSON."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


# An invalid body larger than the API takes (2 MiB) is refused with 413 before it is parsed: as much
# a rejection as 400/422, and schemathesis does not count it as one by default.
REJECTIONS = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
)

schema = schemathesis.openapi.from_dict(_served_schema(), config=CONFIG)
schema.app = WSGIHandler()


@pytest.fixture
def key_creator(tenant_a):
    """A person creates the key: writes that need one answerable (campaigns) then run past that check."""
    from healthmail.accounts.roles import Role
    from tests.factories import MembershipFactory

    return MembershipFactory(tenant=tenant_a, role=Role.TENANT_ADMIN).user


@pytest.fixture
def in_test_transaction():
    # The request runs inside the test's transaction: Django closes "old" connections at the start
    # and end of every request, which would end that transaction, so (as its test client does) not here.
    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (signals.request_started, signals.request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_keeps_to_its_schema(case, issue_key, key_creator, in_test_transaction):
    key = issue_key(scopes=list(SCOPES), by=key_creator)
    case.call_and_validate(headers=_authorization(case, key), excluded_checks=[positive_data_acceptance])


def _authorization(case, key: str) -> dict:
    """Our key, except for a case whose negated part is the missing Authorization header itself:
    adding it back would send a valid request that the check then counts as invalid data accepted."""
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    sent = {name.lower() for name in case.headers or {}}
    if headers is not None and headers.mode.is_negative and "authorization" not in sent:
        return {}
    return {"Authorization": f"Bearer {key}"}

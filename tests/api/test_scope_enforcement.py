"""No auth bypass (RELIABILITY S4), operation by operation, read from the schema itself: every
operation lists the scopes it needs (`x-required-scopes`), and

- no key, or a key nobody issued, answers 401;
- a key holding every scope except one the operation needs answers 403, whatever the rest of the
  request (the object need not exist, the body may be empty);
- a key holding exactly the listed scopes gets past the check (no 401, no scope refusal): the schema states
  what is enough, not just something the key may lack.

A new operation is covered as soon as it is in the schema; one that lists no scopes fails here."""

from __future__ import annotations

import uuid

import pytest

from healthmail.accounts.api_keys import SCOPES
from tests.api.conftest import assert_problem
from tests.api.schema_support import served_schema

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
SCHEMA = served_schema()
OPERATIONS = [
    pytest.param(method.upper(), path, operation, id=operation["operationId"])
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
    if method in METHODS
]
# Any valid key may call an operation that needs no scope; a key holds at least one.
SOME_SCOPE = ["segments:read"]


def _concrete(path: str, operation: dict) -> str:
    """The path with a value of the right type for each parameter; no such object need exist."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "path":
            continue
        schema = parameter.get("schema", {})
        value = "1" if schema.get("type") == "integer" else str(uuid.uuid4())
        path = path.replace("{" + parameter["name"] + "}", value)
    return path


def _call(api, key, method: str, path: str, **extra):
    return api(key).generic(method, path, "{}" if method in {"POST", "PUT", "PATCH"} else "", **extra)


def test_the_schema_lists_operations_and_known_scopes():
    assert len(OPERATIONS) >= 50
    for param in OPERATIONS:
        _, path, operation = param.values
        scopes = operation.get("x-required-scopes")
        assert scopes is not None, f"{path}: the operation lists no scopes"
        assert set(scopes) <= set(SCOPES), f"{path}: unknown scopes {set(scopes) - set(SCOPES)}"
        assert operation["security"] == [{"ApiKeyAuth": []}], f"{path}: not behind the API key"


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_no_key_or_an_unknown_key_is_refused(api, method, path, operation):
    url = _concrete(path, operation)
    assert_problem(_call(api, None, method, url), 401)
    unknown = f"hm_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"
    # From an address of its own: refused keys are counted per address, and enough of them refuse
    # every key from it for a while (tests/api/test_api_key_authentication.py), the test's own too.
    address = ".".join(str(part) for part in (10, *uuid.uuid4().bytes[:3]))
    assert_problem(_call(api, unknown, method, url, REMOTE_ADDR=address), 401)


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_a_key_lacking_a_needed_scope_is_refused(api, issue_key, method, path, operation):
    url = _concrete(path, operation)
    for missing in operation["x-required-scopes"]:
        key = issue_key(scopes=[scope for scope in SCOPES if scope != missing])
        body = assert_problem(_call(api, key, method, url), 403, "permission_denied")
        assert missing in body["detail"], body


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_a_key_with_exactly_the_listed_scopes_gets_past_the_check(
    api, issue_key, key_creator, method, path, operation
):
    key = issue_key(scopes=operation["x-required-scopes"] or SOME_SCOPE, by=key_creator)
    response = _call(api, key, method, _concrete(path, operation))
    # Other refusals may answer 403 (no BAA for PHI, for one); the scope check's own may not.
    assert response.status_code != 401, response.content
    assert not (response.status_code == 403 and response.json()["code"] == "permission_denied"), (
        response.content
    )

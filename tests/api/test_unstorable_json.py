"""JSON that parses but cannot be stored or rendered (NUL, lone surrogates, infinite numbers, absurd
nesting) is refused at the parser with 422 or 400, on every operation, and nothing is written:
before, a NUL in a key of a bulk item reached the idempotency store and answered 500."""

from __future__ import annotations

import pytest

from healthmail.api.models import IdempotencyRecord
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db

BULK = "/api/v1/contacts/bulk"

UNSTORABLE = [
    pytest.param('{"contacts": [{"x\\u0000": 1}]}', "$.contacts[0]", id="nul-in-nested-key"),
    pytest.param(
        '{"contacts": [{"email": "a\\u0000@example.org"}]}', "$.contacts[0].email", id="nul-in-value"
    ),
    pytest.param('{"contacts": [{"x\\ud800": 1}]}', "$.contacts[0]", id="lone-surrogate-in-key"),
    pytest.param(
        '{"contacts": [{"email": "\\udc00@example.org"}]}', "$.contacts[0].email", id="lone-surrogate"
    ),
    pytest.param('{"contacts": [{"custom": {"n": 1e400}}]}', "$.contacts[0].custom.n", id="infinite-number"),
]


@pytest.mark.parametrize(("body", "path"), UNSTORABLE)
def test_unstorable_json_answers_422_naming_the_place_and_stores_nothing(
    api, issue_key, tenant_a, body, path
):
    response = api(issue_key(scopes=["contacts:write"])).post(BULK, body, HTTP_IDEMPOTENCY_KEY="nul-1")
    problem = assert_problem(response, 422, "validation_failed")
    assert list(problem["errors"]) == [path]
    with tenant_context(tenant_a):
        assert not IdempotencyRecord.objects.exists()


def test_a_key_may_be_used_again_after_its_request_was_refused(api, issue_key):
    # With contacts:phi the answer tells created from updated (docs/privacy.md, writes).
    client = api(issue_key(scopes=["contacts:write", "contacts:phi"]))
    refused = client.post(BULK, '{"contacts": [{"x\\u0000": 1}]}', HTTP_IDEMPOTENCY_KEY="again-1")
    assert_problem(refused, 422)
    accepted = client.post(BULK, {"contacts": [{"email": "pat@example.org"}]}, HTTP_IDEMPOTENCY_KEY="again-1")
    assert accepted.status_code == 200
    assert accepted.json()["counts"]["created"] == 1


@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/messages", "/api/v1/suppressions"])
def test_every_operation_refuses_nul_the_same_way(api, issue_key, path):
    response = api(issue_key()).post(path, '{"a\\u0000b": 1}', HTTP_IDEMPOTENCY_KEY="nul-2")
    assert assert_problem(response, 422, "validation_failed")["errors"] == {
        "$": ["has a key that contains a NUL character or an unpaired surrogate, which cannot be stored"]
    }


def test_absurdly_nested_json_answers_400(api, issue_key):
    response = api(issue_key()).post("/api/v1/contacts", "[" * 50_000 + "]" * 50_000)
    assert_problem(response, 400, "malformed_request")

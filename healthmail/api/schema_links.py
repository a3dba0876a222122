"""OpenAPI links: which answer gives the id another operation takes (a drf-spectacular postprocessing
hook). Integrators read them as "create, then use the id like this"; schemathesis follows them to test
sequences of calls (tests/api/test_schemathesis_stateful.py).

The rule is general, so a new operation gets its links without a list to keep: a POST on a collection
`/things` whose answer carries an `id` links to every operation on `/things/{thing_id}...`. A few
answers give the id of another collection's object; EXTRA_LINKS names them."""

from __future__ import annotations

import re
from typing import Any

_SUCCESS = ("200", "201", "202")
_METHODS = ("get", "post", "put", "patch", "delete")
# The last parameter of a path and the collection before it: /things/{thing_id}/parts/{part_id}/x.
_ITEM_PATH = re.compile(r"^(?P<collection>.+)/\{(?P<parameter>\w+)\}(?:/[^{]*)?$")
_PARAMETER = re.compile(r"\{(\w+)\}")

# (operation, status) → operations whose path parameter is the `id` in that answer.
EXTRA_LINKS: dict[tuple[str, str], list[str]] = {
    # A ping is a webhook delivery: it can be delivered again.
    ("webhooks_ping", "202"): ["webhooks_deliveries_redeliver"],
}


def add_links(result: dict[str, Any], generator: object, request: object, public: object) -> dict[str, Any]:
    """The POSTPROCESSING_HOOKS entry: `links` on every answer that carries an id another operation takes."""
    paths = result.get("paths", {})
    schemas = result.get("components", {}).get("schemas", {})
    by_id = {
        operation["operationId"]: (path, operation)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if method in _METHODS
    }
    for path, operations in paths.items():
        post = operations.get("post")
        if post is None:
            continue
        targets = [
            (match["parameter"], operation["operationId"], _PARAMETER.findall(path))
            for item_path, item_operations in paths.items()
            if (match := _ITEM_PATH.match(item_path)) and match["collection"] == path
            for method, operation in item_operations.items()
            if method in _METHODS
        ]
        for status in _SUCCESS:
            _link(post, status, targets, schemas)
    for (source, status), names in EXTRA_LINKS.items():
        _, operation = by_id[source]
        targets = [(_last_parameter(by_id[name][0]), name, []) for name in names]
        _link(operation, status, targets, schemas)
    return result


def _link(
    operation: dict[str, Any], status: str, targets: list[tuple[str, str, list[str]]], schemas: dict[str, Any]
) -> None:
    """`targets`: (the parameter the id fills, the operation, parameters the request's path passes on)."""
    response = operation.get("responses", {}).get(status)
    if response is None or not targets or not _carries_id(response, schemas):
        return
    links = response.setdefault("links", {})
    for parameter, target, passed_on in targets:
        parameters = {f"path.{name}": f"$request.path.{name}" for name in passed_on}
        links[target] = {
            "operationId": target,
            "parameters": {**parameters, f"path.{parameter}": "$response.body#/id"},
            "description": f"The `id` in this answer is the `{parameter}` of {target}.",
        }


def _carries_id(response: dict[str, Any], schemas: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return "id" in schema.get("properties", {})


def _last_parameter(path: str) -> str:
    match = _ITEM_PATH.match(path)
    if match is None:
        raise ValueError(f"EXTRA_LINKS names {path}, which takes no path parameter")
    return match["parameter"]

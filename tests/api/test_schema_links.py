"""The schema's OpenAPI links (healthmail/api/schema_links.py) name real operations and fill real
path parameters, and the ones integrators rely on are there."""

from __future__ import annotations

import re

from tests.api.schema_support import served_schema

SCHEMA = served_schema()
OPERATIONS = {
    operation["operationId"]: (path, operation)
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
    if method in {"get", "post", "put", "patch", "delete"}
}


def _links(operation_id: str, status: str) -> dict:
    return OPERATIONS[operation_id][1]["responses"][status].get("links", {})


def test_every_link_names_an_operation_and_fills_its_path_parameters():
    count = 0
    for source, (_, operation) in OPERATIONS.items():
        for status, response in operation["responses"].items():
            for name, link in response.get("links", {}).items():
                count += 1
                target_path, _ = OPERATIONS[link["operationId"]]
                filled = {key.removeprefix("path.") for key in link["parameters"]}
                assert filled == set(re.findall(r"\{(\w+)\}", target_path)), (source, status, name)
                assert status.startswith("2"), (source, status, name)
    assert count >= 30


def test_created_objects_link_to_the_operations_that_take_them():
    for status in ("200", "201"):
        assert _links("contacts_upsert", status)["contacts_retrieve"]["parameters"] == {
            "path.contact_id": "$response.body#/id"
        }
        assert "contacts_destroy" in _links("contacts_upsert", status)
    assert {"messages_retrieve"} == set(_links("messages_send", "202"))
    assert {"campaigns_retrieve", "campaigns_submit", "campaigns_schedule"} <= set(
        _links("campaigns_create", "201")
    )
    assert {"webhooks_retrieve", "webhooks_destroy", "webhooks_ping"} <= set(_links("webhooks_create", "201"))
    assert _links("webhooks_ping", "202")["webhooks_deliveries_redeliver"]["parameters"] == {
        "path.delivery_id": "$response.body#/id"
    }
    # An error carries no id: no links from it.
    assert "links" not in OPERATIONS["contacts_upsert"][1]["responses"]["422"]

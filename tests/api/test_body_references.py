"""BOLA through the body (RELIABILITY S1): an id that names another object inside a request body or a
query (`template_id` of a campaign, `recipient.contact_id` of a message, `?contact_id=` of the
message list) answers a foreign tenant's object exactly as it answers an id nobody issued, while
the caller's own object is accepted. tests/api/test_bola.py does the same for ids in the path.

`test_every_reference_is_driven` reads the references from the schema itself (every body property
and query parameter named `*_id` whose value is a uuid): a new one fails until it is listed below
with a request that uses it."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from healthmail.accounts.api_keys import SCOPES
from healthmail.accounts.roles import Role
from tests.api.conftest import assert_problem
from tests.api.schema_support import served_schema

pytestmark = pytest.mark.django_db

# (method, path, where the id is: a dotted body path, or `?name` for a query parameter)
Location = tuple[str, str, str]


def _references(schema: dict) -> set[Location]:
    """Every uuid property named *_id in a request body (at any depth) and every *_id query parameter."""
    components = schema["components"]["schemas"]

    def walk(node: dict, prefix: str, seen: frozenset[str]):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                yield from walk(components[name], prefix, seen | {name})
            return
        for combined in ("allOf", "oneOf", "anyOf"):
            for part in node.get(combined, []):
                yield from walk(part, prefix, seen)
        for name, prop in node.get("properties", {}).items():
            where = f"{prefix}{name}"
            if name.endswith("_id") and prop.get("format") == "uuid":
                yield where
            yield from walk(prop, f"{where}.", seen)
        if "items" in node:
            yield from walk(node["items"], f"{prefix}[].", seen)

    found = set()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                found |= {(method.upper(), path, where) for where in walk(body["schema"], "", frozenset())}
            found |= {
                (method.upper(), path, f"?{p['name']}")
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p["name"].endswith("_id")
            }
    return found


# --- objects a reference may name, for any tenant -----------------------------------------------


def _marketer(tenant):
    from tests.campaigns.conftest import person

    return person(tenant, Role.MARKETER).actor


def _contact(tenant) -> uuid.UUID:
    from tests.campaigns.conftest import contacts

    [contact_id] = contacts(tenant, 1, seed=uuid.uuid4().int % 10_000)
    return contact_id


def _template(tenant, kind: str = "marketing") -> uuid.UUID:
    from tests.campaigns.conftest import template

    return template(tenant, _marketer(tenant), name=f"ref {uuid.uuid4().hex[:8]}", kind=kind).pk


def _transactional_template(tenant) -> uuid.UUID:
    return _template(tenant, kind="transactional")


def _segment(tenant) -> uuid.UUID:
    from tests.campaigns.conftest import segment

    return segment(tenant, name=f"ref {uuid.uuid4().hex[:8]}").pk


def _topic(tenant) -> uuid.UUID:
    from consent import services as consent

    return consent.topic_by_key(tenant=tenant, key="marketing_newsletters").pk


def _sender_domain(tenant) -> uuid.UUID:
    from tests.campaigns.conftest import verified_domain

    return verified_domain(tenant, f"m{uuid.uuid4().hex[:8]}.clinic.example.org").pk


def _consent_text(tenant) -> uuid.UUID:
    from consent import services as consent

    return consent.consent_text_current(tenant=tenant, kind="opt_in").pk


def _authorization_text(tenant) -> uuid.UUID:
    from tests.consent.conftest import new_text

    return new_text(tenant).pk


def _message_to(tenant, contact_id) -> uuid.UUID:
    from tests.delivery.outbox_helpers import make_message

    return make_message(tenant, contact_id=contact_id).pk


def _journey(tenant) -> uuid.UUID:
    from tests.journeys.conftest import active_journey

    return active_journey(tenant, name=f"ref {uuid.uuid4().hex[:8]}").pk


def _template_version(tenant) -> uuid.UUID:
    from campaigns.services.templates import template_freeze
    from tests.campaigns.conftest import template

    marketer = _marketer(tenant)
    frozen = template(tenant, marketer, name=f"ref {uuid.uuid4().hex[:8]}")
    return template_freeze(tenant=tenant, actor=marketer, template=frozen).pk


# --- requests of the caller's tenant with one reference left open ---------------------------------


@dataclass(frozen=True)
class Reference:
    make: Callable  # (tenant) -> id of an object of that tenant the reference may name
    # (client, caller's tenant, the id) -> the answer to a request naming it; everything else in the
    # request is the caller's own and valid, so only the reference decides.
    send: Callable


def _post(path: str, body: Callable[[object], dict], field: str) -> Callable:
    def send(client, tenant, value):
        payload = body(tenant)
        *parents, last = field.split(".")
        node = payload
        for parent in parents:
            node = node[parent]
        node[last] = str(value)
        return client.post(path, payload)

    return send


def _campaign_body(tenant) -> dict:
    return {
        "name": f"Reference {uuid.uuid4().hex[:8]}",
        "template_id": str(_template(tenant)),
        "segment_id": str(_segment(tenant)),
        "topic_id": str(_topic(tenant)),
        "sender_domain_id": str(_sender_domain(tenant)),
        "sender_name": "Synthetic Clinic",
    }


def _campaign_edit(field: str) -> Callable:
    def send(client, tenant, value):
        draft = client.post("/api/v1/campaigns", _campaign_body(tenant))
        assert draft.status_code == 201, draft.content
        return client.generic(
            "PATCH", f"/api/v1/campaigns/{draft.json()['id']}", json.dumps({field: str(value)})
        )

    return send


def _message_body(tenant) -> dict:
    from tests.campaigns.conftest import verified_domain

    verified_domain(tenant, f"t{uuid.uuid4().hex[:8]}.clinic.example.org")
    return {
        "recipient": {"contact_id": str(_contact(tenant))},
        "purpose": "treatment",
        "template_id": str(_transactional_template(tenant)),
    }


def _authorization_body(tenant) -> dict:
    from tests.consent.conftest import new_contact

    today = timezone.localdate()
    return {
        "contact_id": str(new_contact(tenant).pk),
        "kind": "marketing",
        "text_id": str(_authorization_text(tenant)),
        "signer": {"name": "Pat Example", "signed_on": str(today - datetime.timedelta(days=3))},
        "source": "paper",
        "attachment": {
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(b"%PDF-1.4\n% scan\n").decode(),
        },
    }


def _waiver_body(tenant) -> dict:
    from consent import services as consent
    from tests.consent.conftest import evidence, new_contact
    from tests.delivery.patient_mail import patient_sender

    patient_sender(tenant)
    consent.consent_settings_update(
        tenant=tenant,
        actor=evidence().actor,
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=True,
        reminder_days_before_expiry=30,
    )
    return {
        "contact_id": str(new_contact(tenant).pk),
        "purposes": ["treatment"],
        "source": "paper",
        "received_on": str(timezone.localdate() - datetime.timedelta(days=1)),
    }


def _consent_event_body(tenant) -> dict:
    from tests.consent.conftest import new_contact

    return {
        "contact_id": str(new_contact(tenant).pk),
        "topic": "research",
        "action": "grant",
        "source": "api",
    }


# The contact each message made here was sent to, with its tenant: an engagement event names both.
_RECIPIENT: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}


def _message(tenant) -> uuid.UUID:
    contact_id = _contact(tenant)
    message_id = _message_to(tenant, contact_id)
    _RECIPIENT[message_id] = (tenant.pk, contact_id)
    return message_id


def _engagement(field: str) -> Callable:
    """An engagement event about the caller's contact; `message_id` names a message sent to them (the
    contact is the message's recipient when the message is the caller's, else one of the caller's)."""

    def send(client, tenant, value):
        if field == "contact_id":
            return client.post("/api/v1/events", {"contact_id": str(value), "kind": "conversion"})
        owner, recipient = _RECIPIENT.get(value, (None, None))
        contact_id = recipient if owner == tenant.pk else _contact(tenant)
        body = {"contact_id": str(contact_id), "kind": "conversion", "message_id": str(value)}
        return client.post("/api/v1/events", body)

    return send


def _message_for_a_contact(tenant) -> uuid.UUID:
    """A contact of `tenant` with a message: naming it in a filter finds something."""
    contact_id = _contact(tenant)
    _message_to(tenant, contact_id)
    return contact_id


def _message_filter(client, tenant, value):
    return client.get(f"/api/v1/messages?{urlencode({'contact_id': str(value)})}")


def _in_path(make_parent: Callable, path: str) -> Callable:
    def send(client, tenant, value):
        return client.post(path.format(make_parent(tenant)), {"contact_id": str(value)})

    return send


REFERENCES: dict[Location, Reference] = {
    **{
        ("POST", "/api/v1/campaigns", field): Reference(
            make, _post("/api/v1/campaigns", _campaign_body, field)
        )
        for field, make in {
            "template_id": _template,
            "segment_id": _segment,
            "topic_id": _topic,
            "sender_domain_id": _sender_domain,
        }.items()
    },
    **{
        ("PATCH", "/api/v1/campaigns/{campaign_id}", field): Reference(make, _campaign_edit(field))
        for field, make in {
            "template_id": _template,
            "segment_id": _segment,
            "topic_id": _topic,
            "sender_domain_id": _sender_domain,
        }.items()
    },
    ("POST", "/api/v1/messages", "recipient.contact_id"): Reference(
        _contact, _post("/api/v1/messages", _message_body, "recipient.contact_id")
    ),
    ("POST", "/api/v1/messages", "template_id"): Reference(
        _transactional_template, _post("/api/v1/messages", _message_body, "template_id")
    ),
    ("GET", "/api/v1/messages", "?contact_id"): Reference(_message_for_a_contact, _message_filter),
    ("POST", "/api/v1/authorizations", "contact_id"): Reference(
        _contact, _post("/api/v1/authorizations", _authorization_body, "contact_id")
    ),
    ("POST", "/api/v1/authorizations", "text_id"): Reference(
        _authorization_text, _post("/api/v1/authorizations", _authorization_body, "text_id")
    ),
    ("POST", "/api/v1/consent/events", "contact_id"): Reference(
        _contact, _post("/api/v1/consent/events", _consent_event_body, "contact_id")
    ),
    ("POST", "/api/v1/consent/events", "text_version_id"): Reference(
        _consent_text, _post("/api/v1/consent/events", _consent_event_body, "text_version_id")
    ),
    ("POST", "/api/v1/consent/waivers", "contact_id"): Reference(
        _contact, _post("/api/v1/consent/waivers", _waiver_body, "contact_id")
    ),
    ("POST", "/api/v1/suppressions", "contact_id"): Reference(
        _contact, _post("/api/v1/suppressions", lambda tenant: {"reason": "manual"}, "contact_id")
    ),
    ("POST", "/api/v1/events", "contact_id"): Reference(_contact, _engagement("contact_id")),
    ("POST", "/api/v1/events", "message_id"): Reference(_message, _engagement("message_id")),
    ("POST", "/api/v1/journeys/{journey_id}/enrolments", "contact_id"): Reference(
        _contact, _in_path(_journey, "/api/v1/journeys/{}/enrolments")
    ),
    ("POST", "/api/v1/journeys/{journey_id}/removals", "contact_id"): Reference(
        _contact, _in_path(_journey, "/api/v1/journeys/{}/removals")
    ),
    ("POST", "/api/v1/templates/{template_id}/preview", "contact_id"): Reference(
        _contact, _in_path(_template, "/api/v1/templates/{}/preview")
    ),
    ("POST", "/api/v1/template-versions/{version_id}/preview", "contact_id"): Reference(
        _contact, _in_path(_template_version, "/api/v1/template-versions/{}/preview")
    ),
}


def test_every_reference_is_driven():
    found = _references(served_schema())
    assert len(found) >= 20
    assert not found - set(REFERENCES), (
        f"add these references to REFERENCES: {sorted(found - set(REFERENCES))}"
    )
    assert not set(REFERENCES) - found, f"no longer in the schema: {sorted(set(REFERENCES) - found)}"


def _same_answer(foreign, missing) -> None:
    assert foreign.status_code == missing.status_code, (foreign.content, missing.content)
    if foreign.status_code >= 400:  # refused alike: "no such object" (404) or an invalid field (422)
        assert foreign.status_code in (404, 422), foreign.content
        foreign_body = assert_problem(foreign, foreign.status_code)
        missing_body = assert_problem(missing, missing.status_code)
        assert {**foreign_body, "request_id": ""} == {**missing_body, "request_id": ""}
    else:  # a filter: nothing of another tenant is found, exactly as for an id nobody issued
        assert foreign.json() == missing.json()


@pytest.mark.parametrize(
    ("location", "reference"), [pytest.param(k, v, id=" ".join(k)) for k, v in REFERENCES.items()]
)
def test_a_foreign_id_in_a_request_answers_like_a_missing_one(
    api, issue_key, key_creator, tenant_a, tenant_b, location, reference
):
    client = api(issue_key(tenant=tenant_a, scopes=list(SCOPES), by=key_creator))
    own = reference.send(client, tenant_a, reference.make(tenant_a))
    assert 200 <= own.status_code < 300, f"the caller's own object must be accepted: {own.content!r}"
    foreign = reference.send(client, tenant_a, reference.make(tenant_b))
    missing = reference.send(client, tenant_a, uuid.uuid4())
    _same_answer(foreign, missing)
    if location[2].startswith("?"):
        assert own.json()["results"], "the filter found the caller's own object"
        assert not foreign.json()["results"]

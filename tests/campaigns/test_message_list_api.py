"""GET /api/v1/messages: the tenant's messages in cursor pages, filtered, without addresses or
content; each page is an audited PHI read (who got which kind of message)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from delivery.models import Message, Stream
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem, audit_events
from tests.delivery.outbox_helpers import make_message

pytestmark = pytest.mark.django_db

LIST = "/api/v1/messages"


def _url(**query) -> str:
    return f"{LIST}?{urlencode(query)}"


def _contact(tenant):
    from tests.consent.conftest import new_contact

    return new_contact(tenant)


def test_lists_own_messages_newest_first_in_pages(api, issue_key, tenant_a, tenant_b):
    mine = [make_message(tenant_a) for _ in range(3)]
    make_message(tenant_b)
    client = api(issue_key(scopes=["messages:read"]))

    first = client.get(_url(page_size=2))
    assert first.status_code == 200
    second = client.get(first.json()["next"])
    listed = [m["id"] for m in first.json()["results"] + second.json()["results"]]

    assert listed == [str(m.pk) for m in reversed(mine)]
    assert set(first.json()["results"][0]) == {
        "id", "status", "stream", "purpose", "contact_id", "message_id", "to_domain", "attempts",
        "created_at", "finished_at",
    }  # fmt: skip
    for message in mine:  # no address, ever
        assert message.to_address not in first.content.decode() + second.content.decode()


def test_filters_by_contact_state_and_stream(api, issue_key, tenant_a):
    patient = _contact(tenant_a)
    theirs = make_message(tenant_a, contact_id=patient.pk)
    make_message(tenant_a)
    campaign = make_message(tenant_a, stream=Stream.MARKETING, source_type="campaign")
    with tenant_context(tenant_a):
        Message.objects.filter(pk=campaign.pk).update(state=Message.State.FAILED)
    client = api(issue_key(scopes=["messages:read"]))

    def ids(**query):
        response = client.get(_url(**query))
        assert response.status_code == 200, response.content
        return [m["id"] for m in response.json()["results"]]

    assert ids(contact_id=str(patient.pk)) == [str(theirs.pk)]
    assert ids(state="failed") == [str(campaign.pk)]
    assert ids(stream="marketing") == [str(campaign.pk)]


def test_each_page_is_an_audited_phi_read(api, issue_key, tenant_a):
    patient = _contact(tenant_a)
    message = make_message(tenant_a, contact_id=patient.pk)

    assert api(issue_key(scopes=["messages:read"])).get(LIST).status_code == 200

    (read,) = audit_events(tenant=tenant_a, action="phi.read", target_type="delivery.message")
    assert read.details["purpose"] == "api message list"
    assert read.details["ids"] == [str(message.pk)]
    assert patient.pk in read.contact_ids


def test_bad_filters_and_page_sizes_answer_422(api, issue_key):
    client = api(issue_key(scopes=["messages:read"]))
    assert_problem(client.get(_url(state="lost")), 422, "validation_failed")
    assert_problem(client.get(_url(stream="")), 422, "validation_failed")
    assert_problem(client.get(_url(page_size=0)), 422, "validation_failed")
    assert_problem(client.get(_url(page_size="ten")), 422, "validation_failed")
    assert_problem(client.get(_url(cursor="not-a-cursor")), 422, "validation_failed")


def test_listing_needs_messages_read(api, issue_key):
    assert_problem(api(issue_key(scopes=["messages:send"])).get(LIST), 403, "permission_denied")

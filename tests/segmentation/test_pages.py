"""Segment pages: who may use them, the live count partial, saving, members by role, 404s."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from segmentation import services
from segmentation.models import Segment

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
PLAIN = {"all": [{"field": "state", "op": "eq", "value": "CA"}]}
CLINICAL = {"all": [{"field": "condition", "op": "in", "value": ["I10"]}]}
PAGES = ["segmentation:segment_list", "segmentation:segment_new"]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("page", PAGES)
def test_pages_by_role(member_client, role, page):
    from django.urls import reverse

    response = member_client(role).get(reverse(page))
    allowed = role in (Role.TENANT_ADMIN, Role.MARKETER)
    assert response.status_code == (200 if allowed else 403)
    if allowed:
        assert b"Segment" in response.content


def test_live_count_partial(member_client, tenant_a, audience_a):
    client = member_client(Role.MARKETER)
    response = client.post("/segments/count/", {"definition": json.dumps(CLINICAL)})
    assert response.status_code == 200
    assert b'data-testid="segment-count"' in response.content
    assert b"PHI" in response.content
    invalid = client.post("/segments/count/", {"definition": '{"all": [{"field": "nope"}]}'})
    assert b"/all/0" in invalid.content


def test_live_count_of_rows_names_the_rule_not_a_json_path(member_client):
    client = member_client(Role.MARKETER)
    incomplete = {"g-0-match": "all", "g-0-r-0-field": "condition", "g-0-r-0-op": "in", "g-0-r-0-value": ""}
    page = client.post("/segments/count/", incomplete).content.decode()
    assert "Group 1, rule 1: Value: Condition (ICD-10) must be a non-empty list" in page
    assert "/all/0" not in page


CLINICAL_ROWS = {"g-0-match": "all", "g-0-r-0-field": "condition", "g-0-r-0-op": "in", "g-0-r-0-value": "I10"}


def test_marketer_saves_a_segment(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    response = client.post("/segments/new/", {"name": "Hypertension", **CLINICAL_ROWS})
    assert response.status_code == 302
    with tenant_context(tenant_a):
        segment = Segment.objects.get(name="Hypertension")
    assert segment.uses_phi
    assert segment.owner == client.membership.user
    listing = client.get("/segments/")
    assert b"Hypertension" in listing.content
    assert segment.definition == CLINICAL
    bad = client.post(
        f"/segments/{segment.pk}/", {**CLINICAL_ROWS, "name": "Hypertension", "g-0-r-0-op": "lt"}
    )
    assert bad.status_code == 400
    assert "Group 1, rule 1: Operator: Condition (ICD-10) allows the operators" in bad.content.decode()


def test_admin_saves_from_the_json_box_and_a_marketer_cannot(member_client, tenant_a):
    admin = member_client(Role.TENANT_ADMIN)
    nested = {"all": [{"not": {"all": [{"field": "state", "op": "eq", "value": "CA"}]}}]}
    response = admin.post(
        "/segments/new/", {"name": "Deep", "definition": json.dumps(nested), "source": "json"}
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        segment = Segment.objects.get(name="Deep")
    assert segment.definition == nested
    bad = admin.post(
        f"/segments/{segment.pk}/", {"name": "Deep", "definition": '{"any": 3}', "source": "json"}
    )
    assert bad.status_code == 400
    assert b"/any" in bad.content
    # A marketer sees the JSON read-only; posting it changes nothing (the rows cannot show it either).
    marketer = member_client(Role.MARKETER)
    page = marketer.get(f"/segments/{segment.pk}/").content.decode()
    assert "nests its conditions deeper" in page
    assert 'name="definition"' not in page
    renamed = marketer.post(
        f"/segments/{segment.pk}/", {"name": "Deep 2", "definition": json.dumps(PLAIN), "source": "json"}
    )
    assert renamed.status_code == 302
    with tenant_context(tenant_a):
        segment.refresh_from_db()
    assert (segment.name, segment.definition) == ("Deep 2", nested)


@pytest.mark.parametrize(
    ("role", "definition", "status", "unmasked"),
    [
        (Role.MARKETER, CLINICAL, 403, None),
        (Role.MARKETER, PLAIN, 200, False),
        (Role.COMPLIANCE_OFFICER, CLINICAL, 200, True),
        (Role.TENANT_ADMIN, CLINICAL, 403, None),  # masked by default: a PHI segment discloses health
        (Role.TENANT_ADMIN, PLAIN, 200, False),
    ],
)
def test_member_list_by_role(member_client, tenant_a, audience_a, role, definition, status, unmasked):
    segment = services.segment_create(tenant=tenant_a, actor=ACTOR, name="S", definition=definition)
    response = member_client(role).get(f"/segments/{segment.pk}/members/")
    assert response.status_code == status
    if status == 200:
        assert (b"Unmasked" in response.content) is unmasked
        with tenant_context(tenant_a):
            event = AuditEvent.objects.filter(action="phi.read").latest("id")
        assert event.details["purpose"] == "segment member review"


def test_foreign_segments_answer_404(member_client, tenant_b):
    foreign = services.segment_create(tenant=tenant_b, actor=ACTOR, name="Theirs", definition=PLAIN)
    client = member_client(Role.TENANT_ADMIN)
    for url in (f"/segments/{foreign.pk}/", f"/segments/{foreign.pk}/members/"):
        assert client.get(url).status_code == 404


@pytest.mark.parametrize("role", list(Role))
def test_edit_and_count_by_role(member_client, tenant_a, role):
    segment = services.segment_create(tenant=tenant_a, actor=ACTOR, name="S", definition=PLAIN)
    client = member_client(role)
    allowed = role in (Role.TENANT_ADMIN, Role.MARKETER)
    edit = client.get(f"/segments/{segment.pk}/")
    count = client.post("/segments/count/", {"definition": json.dumps(PLAIN)})
    assert edit.status_code == count.status_code == (200 if allowed else 403)

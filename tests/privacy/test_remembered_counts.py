"""A saved clinical segment's remembered count is an answer too: a marketer sees it in the segment
list only after counting it themselves (so it is in their query audit), never because someone with
PHI access counted it."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from healthmail.actors import Actor
from healthmail.disclosure import Viewer
from healthmail.tenants.context import tenant_context
from segmentation import services

from .conftest import DIABETES

pytestmark = pytest.mark.django_db
NUMBER = re.compile(r"<td>(?:about )?[0-9][0-9,]* <small>")


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "defence-off"])
def test_a_count_someone_else_ran_is_not_shown_to_a_marketer(world, member_client, defended, monkeypatch):
    if not defended:
        monkeypatch.setattr(services, "_answered", lambda tenant, viewer, query: True)
    client = member_client("marketer")
    with tenant_context(world.tenant):
        segment = services.segment_create(
            tenant=world.tenant, actor=Actor.for_user(client.membership.user), name="D", definition=DIABETES
        )
    # A compliance officer (PHI access) counts it: the count is remembered on the segment.
    compliance = Viewer(key="user:compliance", phi=True)
    services.segment_count(tenant=world.tenant, viewer=compliance, definition=DIABETES, segment=segment)
    listed = client.get(reverse("segmentation:segment_list")).content.decode()
    assert bool(NUMBER.search(listed)) is not defended
    if defended:
        assert "not shown until you count it" in listed
        # Counted by the marketer (through the audit), the remembered count is theirs to see.
        client.post(reverse("segmentation:segment_count"), {"definition": json.dumps(DIABETES)})
        assert NUMBER.search(client.get(reverse("segmentation:segment_list")).content.decode())

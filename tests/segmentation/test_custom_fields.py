"""Segments target a tenant's segmentable custom fields (`custom.<key>`) by keyed token, counted as PHI."""

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.services import ContactInput, contact_upsert, custom_field_create
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.disclosure import Viewer
from segmentation import services
from segmentation.dsl import DefinitionError

pytestmark = pytest.mark.django_db


@pytest.fixture
def program_members(tenant_a):
    custom_field_create(
        tenant=tenant_a,
        actor=Actor.system("t"),
        key="care_program",
        label="Care program",
        field_type="text",
        phi_class="clinical",
        segmentable=True,
    )
    ids = {}
    for email, program in (
        ("a@patients.example", "Diabetes Prevention"),
        ("b@patients.example", "Heart Health"),
        ("c@patients.example", None),
    ):
        data = ContactInput(email=email, custom={"care_program": program} if program else None)
        ids[email] = contact_upsert(
            tenant=tenant_a, actor=Actor.system("t"), data=data, source="t"
        ).contact_id
    return ids


def test_custom_field_segment_matches_by_token_and_uses_phi(tenant_a, program_members):
    definition = {"all": [{"field": "custom.care_program", "op": "in", "value": ["diabetes prevention"]}]}
    members = services.segment_member_ids(tenant=tenant_a, definition=definition, now=timezone.now())
    assert set(members) == {program_members["a@patients.example"]}
    assert (
        services.segment_count(
            viewer=Viewer.trusted(), tenant=tenant_a, definition=definition, breakdown=False
        ).uses_phi
        is True
    )


def test_malformed_custom_field_names_are_validation_errors(tenant_a):
    with pytest.raises(DefinitionError):
        services.segment_count(
            viewer=Viewer.trusted(),
            tenant=tenant_a,
            definition={"all": [{"field": "custom.Bad Key!", "op": "in", "value": ["x"]}]},
        )


def test_builder_offers_the_tenants_segmentable_custom_fields(member_client, program_members):
    page = member_client(Role.MARKETER).get(reverse("segmentation:segment_new")).content.decode()
    assert "custom.care_program" in page
    assert "Care program" in page

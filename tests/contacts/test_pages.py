"""Contact pages per role: masking, audited reads, search by blind index, 404 across tenants."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from audit.break_glass import break_glass_open
from audit.models import AuditEvent
from contacts.models import CustomField
from contacts.services import ContactInput
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context

pytestmark = pytest.mark.django_db

LIST = reverse("contacts:contact_list")
FIELDS = reverse("contacts:custom_field_list")
UNMASKED_ROLES = [Role.COMPLIANCE_OFFICER]
# Tenant admins are masked by default like everyone else; they may unmask one contact for a reason.
MASKED_ROLES = [Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER]


@pytest.fixture
def patient(tenant_a, make_contact):
    return make_contact(
        tenant_a,
        email="visible.patient@example.org",
        first_name="Synthetic",
        last_name="Visible",
        phone="555-010-2233",
        external_ids={"epic": "MRN-777"},
        clinical={"conditions": ["F32.9"], "medications": ["Sertraline"]},
        postal_address={"line1": "9 Test Lane", "city": "Testville", "state": "WA", "zip": "98101"},
    )


def detail_url(contact_id) -> str:
    return reverse("contacts:contact_detail", args=[contact_id])


def phi_reads(tenant) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action="phi.read").order_by("id"))


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_roles_see_hints_only_and_the_read_is_audited(member_client, tenant_a, patient, role):
    page = member_client(role).get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert "v***@example.org" in html
    assert "S*** V***" in html
    assert "***-***-2233" in html
    assert "visible.patient" not in html
    assert "Visible" not in html
    (event,) = phi_reads(tenant_a)
    assert event.details["purpose"] == "masked list"
    assert event.details["ids"] == [str(patient.pk)]


@pytest.mark.parametrize("role", UNMASKED_ROLES)
def test_compliance_sees_unmasked(member_client, tenant_a, patient, role):
    html = member_client(role).get(LIST).content.decode()
    assert "visible.patient@example.org" in html
    assert "Synthetic Visible" in html
    assert phi_reads(tenant_a)[0].details["purpose"] == "contact list"


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_masked_detail_hides_clinical_values(member_client, tenant_a, patient, role):
    html = member_client(role).get(detail_url(patient.pk)).content.decode()
    assert "Clinical information is not shown to your role." in html
    assert "F32.9" not in html
    assert "Sertraline" not in html
    assert "Behavioral" not in html
    assert "9 Test Lane" not in html
    assert "MRN-777" not in html
    assert "WA 981xx" in " ".join(html.split())
    (event,) = phi_reads(tenant_a)
    assert (event.details["purpose"], "clinical" in event.details["fields"]) == ("masked detail", False)


@pytest.mark.parametrize("role", UNMASKED_ROLES)
def test_unmasked_detail_shows_clinical_and_records_fields(member_client, tenant_a, patient, role):
    html = member_client(role).get(detail_url(patient.pk)).content.decode()
    assert "F32.9" in html
    assert "Sertraline" in html
    assert "Behavioral health" in html
    assert "9 Test Lane" in html
    assert "MRN-777" in html
    (event,) = phi_reads(tenant_a)
    assert event.details["purpose"] == "contact detail"
    assert {"clinical", "email", "postal_address"} <= set(event.details["fields"])
    assert event.target_id == str(patient.pk)


def test_clinical_reviewer_under_break_glass_sees_the_record(member_client, tenant_a, patient):
    client = member_client(Role.CLINICAL_REVIEWER)
    break_glass_open(
        user=client.membership.user,
        role=Role.CLINICAL_REVIEWER,
        tenant=tenant_a,
        target_type="contacts.contact",
        target_id=str(patient.pk),
        reason="Patient in the emergency room, allergy check",
    )
    html = client.get(detail_url(patient.pk)).content.decode()
    assert "visible.patient@example.org" in html
    assert "break-glass access" in html
    event = phi_reads(tenant_a)[-1]
    assert event.details["purpose"] == "break-glass"
    assert "break_glass" in event.details


@pytest.mark.parametrize(
    "query", ["VISIBLE.patient@example.org", "(555) 010-2233", "epic:MRN-777", "MRN-777"], ids=str
)
def test_search_finds_exact_matches_through_blind_indexes(
    member_client, tenant_a, patient, make_contact, query
):
    make_contact(tenant_a, email="someone.else@example.org", phone="555-010-9999")
    response = member_client(Role.MARKETER).post(LIST, {"q": query})
    html = response.content.decode()
    assert "v***@example.org" in html
    assert "s***@example.org" not in html
    assert query not in response.request.get("QUERY_STRING", "")
    assert phi_reads(tenant_a)[-1].details["ids"] == [str(patient.pk)]


def test_search_does_not_match_partial_values(member_client, patient):
    html = member_client(Role.MARKETER).post(LIST, {"q": "visible.patient"}).content.decode()
    assert "No contact matches exactly" in html


@pytest.mark.parametrize("role", [*MASKED_ROLES, *UNMASKED_ROLES])
def test_foreign_and_unknown_contacts_are_404(member_client, tenant_b, upsert, role):
    (foreign,) = upsert(tenant_b, ContactInput(email="b.patient@example.org"))
    client = member_client(role)
    assert client.get(detail_url(foreign.contact_id)).status_code == 404
    assert client.get(detail_url(uuid.uuid4())).status_code == 404
    assert "b***@example.org" not in client.get(LIST).content.decode()


def test_deleted_contact_is_404_and_off_the_list(member_client, tenant_a, patient):
    from contacts.services import contact_delete
    from healthmail.actors import Actor

    contact_delete(tenant=tenant_a, actor=Actor.system("tests"), contact=patient, reason="test")
    client = member_client(Role.COMPLIANCE_OFFICER)
    assert client.get(detail_url(patient.pk)).status_code == 404
    assert "visible.patient" not in client.get(LIST).content.decode()


def test_platform_admin_sees_no_contacts(platform_admin_client):
    assert platform_admin_client.get(LIST).status_code == 403


def test_tenant_admin_declares_a_custom_field(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    response = client.post(
        FIELDS,
        {
            "key": "tier",
            "label": "Member tier",
            "field_type": "choice",
            "phi_class": "demographic",
            "choices": "a, b",
        },
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        field = CustomField.objects.get(key="tier")
        assert AuditEvent.objects.filter(action="contacts.custom_field_create").count() == 1
    assert field.choices == ["a", "b"]
    assert "Member tier" in client.get(FIELDS).content.decode()
    duplicate = client.post(
        FIELDS, {"key": "tier", "label": "Again", "field_type": "text", "phi_class": "demographic"}
    )
    assert "already exists" in duplicate.content.decode()
    client.post(reverse("contacts:custom_field_delete", args=[field.pk]))
    with tenant_context(tenant_a):
        assert not CustomField.objects.filter(key="tier").exists()


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_other_roles_cannot_manage_custom_fields(member_client, role):
    client = member_client(role)
    assert client.get(FIELDS).status_code == 403
    assert client.post(FIELDS, {"key": "x", "label": "X", "field_type": "text"}).status_code == 403


def test_foreign_custom_field_cannot_be_deleted(member_client, tenant_b):
    from contacts.services import custom_field_create
    from healthmail.actors import Actor

    field = custom_field_create(
        tenant=tenant_b,
        actor=Actor.system("t"),
        key="k",
        label="K",
        field_type="text",
        phi_class="demographic",
    )
    response = member_client(Role.TENANT_ADMIN).post(reverse("contacts:custom_field_delete", args=[field.pk]))
    assert response.status_code == 404
    with tenant_context(tenant_b):
        assert CustomField.objects.filter(pk=field.pk).exists()


def test_nav_links_follow_permissions(member_client):
    admin_html = member_client(Role.TENANT_ADMIN).get("/").content.decode()
    assert LIST in admin_html
    assert FIELDS in admin_html
    marketer_html = member_client(Role.MARKETER).get("/").content.decode()
    assert LIST in marketer_html
    assert FIELDS not in marketer_html


# --- Unmasking: a tenant admin's permission, one contact at a time, for a recorded reason ---------------


def unmask_url(contact_id) -> str:
    return reverse("contacts:contact_unmask", args=[contact_id])


def test_admin_detail_is_masked_and_offers_unmasking(member_client, tenant_a, patient):
    html = member_client(Role.TENANT_ADMIN).get(detail_url(patient.pk)).content.decode()
    assert "visible.patient@example.org" not in html
    assert "v***@example.org" in html
    assert unmask_url(patient.pk) in html


def test_admin_unmasks_with_a_reason_and_both_are_recorded(member_client, tenant_a, patient):
    client = member_client(Role.TENANT_ADMIN)
    reason = "Patient asked by phone to fix their address"
    response = client.post(unmask_url(patient.pk), {"reason": reason})
    html = response.content.decode()
    assert response.status_code == 200
    assert "visible.patient@example.org" in html
    assert "9 Test Lane" in html
    assert "F32.9" not in html  # identity, not clinical values
    assert response["Cache-Control"] == "no-store"
    with tenant_context(tenant_a):
        unmask = AuditEvent.objects.get(action="contact.unmask")
    assert (unmask.reason, unmask.actor_id) == (reason, str(client.membership.user.pk))
    assert unmask.contact_ids == [patient.pk]
    read = phi_reads(tenant_a)[-1]
    assert read.details["purpose"] == "unmask"
    assert read.contact_ids == [patient.pk]
    # The next plain visit is masked again.
    assert "visible.patient@example.org" not in client.get(detail_url(patient.pk)).content.decode()


@pytest.mark.parametrize("reason", ["", "because", "   x   "])
def test_unmasking_without_a_real_reason_stays_masked(member_client, tenant_a, patient, reason):
    response = member_client(Role.TENANT_ADMIN).post(unmask_url(patient.pk), {"reason": reason})
    assert response.status_code == 400
    assert "visible.patient@example.org" not in response.content.decode()
    with tenant_context(tenant_a):
        assert not AuditEvent.objects.filter(action="contact.unmask").exists()


@pytest.mark.parametrize("role", [Role.MARKETER, Role.CLINICAL_REVIEWER, Role.COMPLIANCE_OFFICER])
def test_only_tenant_admins_hold_the_unmask_permission(member_client, tenant_a, patient, role):
    response = member_client(role).post(unmask_url(patient.pk), {"reason": "I would like to see it please"})
    assert response.status_code == 403
    assert "visible.patient@example.org" not in response.content.decode()


def test_unmasking_a_foreign_contact_is_404(member_client, tenant_b, make_contact):
    foreign = make_contact(tenant_b, email="foreign.person@example.org")
    client = member_client(Role.TENANT_ADMIN)
    response = client.post(unmask_url(foreign.pk), {"reason": "Patient asked by phone to fix it"})
    assert response.status_code == 404
    assert client.post(unmask_url(uuid.uuid4()), {"reason": "Patient asked by phone"}).status_code == 404

"""Platform administration pages: only platform admins, UUID ids, 404 for unknown, all audited."""

import datetime
import hashlib
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement, Subcontractor, Tenant
from healthmail.tenants.services import active_baa, tenant_can
from tests.factories import BaaFactory, MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def _pages(tenant, baa):
    return [
        reverse("tenants:tenant_list"),
        reverse("tenants:tenant_create"),
        reverse("tenants:tenant_detail", kwargs={"tenant_id": tenant.pk}),
        reverse("tenants:baa_create", kwargs={"tenant_id": tenant.pk}),
        reverse("tenants:baa_terminate", kwargs={"tenant_id": tenant.pk, "baa_id": baa.pk}),
    ]


def test_platform_admin_reaches_every_page(platform_admin_client, tenant_a):
    baa = active_baa(tenant=tenant_a)
    for url in _pages(tenant_a, baa):
        assert platform_admin_client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", list(Role))
def test_tenant_roles_are_refused_everywhere(member_client, tenant_a, role):
    client = member_client(role)
    baa = active_baa(tenant=tenant_a)
    for url in _pages(tenant_a, baa):
        assert client.get(url).status_code == 403, url
    status_url = reverse("tenants:tenant_status", kwargs={"tenant_id": tenant_a.pk})
    assert client.post(status_url, {"status": "suspended", "reason": "x"}).status_code == 403
    assert Tenant.objects.get(pk=tenant_a.pk).is_active
    with tenant_context(tenant_a):
        denied = AuditEvent.objects.filter(action="authz.denied", outcome="denied").count()
    assert denied == 6


def test_signed_out_visitor_is_sent_to_sign_in(client, tenant_a):
    response = client.get(reverse("tenants:tenant_list"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_unknown_ids_answer_404(platform_admin_client, tenant_a, tenant_b):
    baa_b = active_baa(tenant=tenant_b)
    missing = uuid.uuid4()
    for url in [
        reverse("tenants:tenant_detail", kwargs={"tenant_id": missing}),
        reverse("tenants:baa_create", kwargs={"tenant_id": missing}),
        reverse("tenants:baa_terminate", kwargs={"tenant_id": tenant_a.pk, "baa_id": missing}),
        # B's BAA under A's URL: not found, never someone else's row
        reverse("tenants:baa_terminate", kwargs={"tenant_id": tenant_a.pk, "baa_id": baa_b.pk}),
        "/platform/tenants/42/",
    ]:
        assert platform_admin_client.get(url).status_code == 404, url


def test_list_shows_baa_status_per_service_and_counts_only(platform_admin_client, tenant_a):
    unsigned = TenantFactory(name="Synthetic Unsigned Clinic")
    MembershipFactory(tenant=tenant_a)
    MembershipFactory(tenant=tenant_a)
    response = platform_admin_client.get(reverse("tenants:tenant_list"))
    rows = {s.tenant.pk: s for s in response.context["summaries"]}
    assert rows[tenant_a.pk].covered_count == 4
    assert rows[tenant_a.pk].member_count == 2
    assert rows[unsigned.pk].covered_count == 0
    body = response.content.decode()
    assert "Synthetic Unsigned Clinic" in body
    assert "staff.example.org" not in body  # member emails are not shown, only counts


def test_create_tenant(platform_admin_client):
    response = platform_admin_client.post(
        reverse("tenants:tenant_create"),
        {
            "name": "Synthetic Regional Hospital",
            "slug": "regional",
            "postal_address": "1 Example Road",
            "timezone": "America/Chicago",
        },
    )
    tenant = Tenant.objects.get(slug="regional")
    assert response.status_code == 302
    assert response["Location"] == reverse("tenants:tenant_detail", kwargs={"tenant_id": tenant.pk})
    assert not tenant_can(tenant, "transactional_email")
    with tenant_context(tenant):
        event = AuditEvent.objects.get(action="tenant.create")
    assert event.actor_id == str(response.wsgi_request.user.pk)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("slug", "clinic-a", "is taken"),
        ("timezone", "Atlantis/Capital", "Unknown time zone"),
        ("slug", "Bad Slug!", "Enter a valid"),
    ],
)
def test_create_tenant_bad_input(platform_admin_client, tenant_a, field, value, error):
    data = {"name": "X", "slug": "fresh", "postal_address": "1 Example Road", "timezone": "UTC", field: value}
    response = platform_admin_client.post(reverse("tenants:tenant_create"), data)
    assert response.status_code == 200
    assert error in " ".join(response.context["form"].errors[field])
    assert Tenant.objects.count() == 1


def _baa_post(**overrides):
    data = {
        "counterparty": "Synthetic Clinic A",
        "signed_on": str(TODAY),
        "effective_on": str(TODAY),
        "expires_on": "",
        "signatory_name": "Synthetic Signatory",
        "signatory_title": "CEO",
        "document": SimpleUploadedFile("baa.pdf", b"%PDF-1.4 synthetic signed agreement"),
        "services": ["transactional_email", "secure_portal"],
        "breach_notification_days": "30",
        "subcontractors": "Synthetic Hosting | database hosting\n\nSynthetic Relay | SMTP relay",
    }
    return {**data, **overrides}


def test_record_baa_keeps_only_the_document_hash(platform_admin_client):
    tenant = TenantFactory()
    url = reverse("tenants:baa_create", kwargs={"tenant_id": tenant.pk})
    response = platform_admin_client.post(url, _baa_post())
    assert response.status_code == 302
    baa = active_baa(tenant=tenant)
    assert baa.document_sha256 == hashlib.sha256(b"%PDF-1.4 synthetic signed agreement").hexdigest()
    assert baa.services == ["secure_portal", "transactional_email"]
    assert baa.breach_notification_days == 30
    assert baa.recorded_by == response.wsgi_request.user
    with tenant_context(tenant):
        assert sorted(Subcontractor.objects.values_list("name", flat=True)) == [
            "Synthetic Hosting",
            "Synthetic Relay",
        ]
        assert AuditEvent.objects.filter(action="baa.record", target_id=str(baa.pk)).count() == 1
    assert tenant_can(tenant, "transactional_email")
    assert not tenant_can(tenant, "marketing_email")
    detail = platform_admin_client.get(reverse("tenants:tenant_detail", kwargs={"tenant_id": tenant.pk}))
    assert "Synthetic Relay" in detail.content.decode()
    assert [row.state for row in detail.context["baas"]] == ["in force"]


@pytest.mark.parametrize(
    ("overrides", "field", "error"),
    [
        ({"expires_on": str(TODAY)}, "expires_on", "expiry date must come after"),
        ({"effective_on": str(TODAY - datetime.timedelta(days=1))}, "effective_on", "before it is signed"),
        ({"services": []}, "services", "required"),
        ({"breach_notification_days": "61"}, "breach_notification_days", "less than or equal to 60"),
        ({"subcontractors": "Just a name"}, "subcontractors", "Line 1"),
        ({"document": ""}, "document", "required"),
    ],
)
def test_record_baa_bad_input(platform_admin_client, overrides, field, error):
    tenant = TenantFactory()
    url = reverse("tenants:baa_create", kwargs={"tenant_id": tenant.pk})
    response = platform_admin_client.post(url, _baa_post(**overrides))
    assert response.status_code == 200
    assert error in " ".join(response.context["form"].errors[field])
    assert active_baa(tenant=tenant) is None


def test_renewal_form_is_prefilled_from_the_old_baa(platform_admin_client, tenant_a):
    baa = active_baa(tenant=tenant_a)
    url = reverse("tenants:baa_create", kwargs={"tenant_id": tenant_a.pk}) + f"?renew={baa.pk}"
    form = platform_admin_client.get(url).context["form"]
    assert form.initial["services"] == baa.services
    assert form.initial["counterparty"] == baa.counterparty


def test_terminate_baa_with_reason(platform_admin_client, tenant_a):
    baa = active_baa(tenant=tenant_a)
    url = reverse("tenants:baa_terminate", kwargs={"tenant_id": tenant_a.pk, "baa_id": baa.pk})
    missing_reason = platform_admin_client.post(url, {"terminated_on": str(TODAY), "reason": ""})
    assert missing_reason.status_code == 200
    assert tenant_can(tenant_a, "marketing_email")
    response = platform_admin_client.post(url, {"terminated_on": str(TODAY), "reason": "contract ended"})
    assert response.status_code == 302
    assert not tenant_can(tenant_a, "marketing_email")
    with tenant_context(tenant_a):
        assert BusinessAssociateAgreement.objects.get(pk=baa.pk).terminated_on == TODAY
        assert AuditEvent.objects.get(action="baa.terminate").reason == "contract ended"


def test_suspend_and_reactivate_tenant(platform_admin_client, tenant_a):
    url = reverse("tenants:tenant_status", kwargs={"tenant_id": tenant_a.pk})
    assert platform_admin_client.post(url, {"status": "suspended", "reason": ""}).status_code == 400
    assert platform_admin_client.post(url, {"status": "suspended", "reason": "unpaid"}).status_code == 302
    tenant_a.refresh_from_db()
    assert (tenant_a.status, tenant_a.status_reason) == ("suspended", "unpaid")
    assert "is suspended" in tenant_can(tenant_a, "forms").reason
    # a double-submitted suspend is refused rather than flipping the status back
    assert platform_admin_client.post(url, {"status": "suspended", "reason": "again"}).status_code == 400
    assert platform_admin_client.post(url, {"status": "active", "reason": "paid"}).status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.is_active
    with tenant_context(tenant_a):
        actions = list(
            AuditEvent.objects.filter(action__startswith="tenant.").values_list("action", flat=True)
        )
    assert sorted(actions) == ["tenant.reactivate", "tenant.suspend"]


def test_baa_history_states(platform_admin_client):
    tenant = TenantFactory()
    day = datetime.timedelta(days=1)
    BaaFactory(
        tenant=tenant,
        signed_on=TODAY - 400 * day,
        effective_on=TODAY - 400 * day,
        expires_on=TODAY - 40 * day,
    )
    BaaFactory(tenant=tenant, signed_on=TODAY - 50 * day, effective_on=TODAY - 50 * day, expires_on=None)
    BaaFactory(tenant=tenant, signed_on=TODAY - 20 * day, effective_on=TODAY - 20 * day, terminated_on=TODAY)
    BaaFactory(tenant=tenant, signed_on=TODAY, effective_on=TODAY + 10 * day, expires_on=None)
    response = platform_admin_client.get(reverse("tenants:tenant_detail", kwargs={"tenant_id": tenant.pk}))
    assert [row.state for row in response.context["baas"]] == [
        "not yet effective",
        "terminated",
        "in force",
        "expired",
    ]

"""Periodic access reviews: an admin keeps or removes each member as of now, removals go through the
membership service, the review is append-only evidence, due dates and reminders follow the setting,
and the pages are for admins (review) and compliance (read) of their own organization only."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from audit.alerts import alerts_scan_tenant
from audit.chain import seal_pending
from audit.models import Alert, AuditEvent
from healthmail.accounts.models import Membership
from healthmail.accounts.roles import Role
from healthmail.errors import ApplicationError, Conflict, PermissionRefused
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from incidents import access_reviews
from incidents.access_reviews import Decision
from incidents.models import AccessReview, AccessReviewEntry
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
D = datetime.date


def _team(tenant):
    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN)
    marketer = MembershipFactory(tenant=tenant, role=Role.MARKETER)
    officer = MembershipFactory(tenant=tenant, role=Role.COMPLIANCE_OFFICER)
    return admin, marketer, officer


def _all_keep(tenant, changes: dict | None = None):
    with tenant_context(tenant):
        members = access_reviews.members_now(tenant=tenant)
    return {m.pk: (changes or {}).get(m.pk, Decision("keep")) for m in members}


def _review(tenant, admin, decisions):
    return access_reviews.access_review_complete(
        tenant=tenant, user=admin.user, role=Role.TENANT_ADMIN, decisions=decisions
    )


def test_a_review_records_everyone_and_removes_through_the_membership_service(tenant_a):
    admin, marketer, officer = _team(tenant_a)
    decisions = _all_keep(tenant_a, {marketer.pk: Decision("remove", "Left the company in May")})
    review = _review(tenant_a, admin, decisions)
    with tenant_context(tenant_a):
        entries = {e.membership_id: e for e in AccessReviewEntry.objects.filter(review=review)}
        assert set(entries) == {admin.pk, marketer.pk, officer.pk}
        assert entries[marketer.pk].decision == "remove"
        assert entries[marketer.pk].role == Role.MARKETER
        assert entries[marketer.pk].email == marketer.user.email
        assert not Membership.objects.get(pk=marketer.pk).is_active
        assert Membership.objects.get(pk=officer.pk).is_active
        actions = list(AuditEvent.objects.filter(tenant=tenant_a).values_list("action", "details"))
    assert ("member.deactivate", {"user": str(marketer.user_id)}) in actions
    [details] = [d for a, d in actions if a == "access_review.complete"]
    assert (details["kept"], details["removed"]) == (2, 1)


def test_a_removal_needs_a_note_and_every_member_a_decision(tenant_a):
    admin, marketer, _ = _team(tenant_a)
    with pytest.raises(ApplicationError, match="Say why"):
        _review(tenant_a, admin, _all_keep(tenant_a, {marketer.pk: Decision("remove", " ")}))
    with pytest.raises(ApplicationError, match="keep or remove"):
        _review(tenant_a, admin, _all_keep(tenant_a, {marketer.pk: Decision("")}))
    with tenant_context(tenant_a):
        assert not AccessReview.objects.exists()
        assert Membership.objects.get(pk=marketer.pk).is_active


def test_a_review_of_a_list_that_changed_meanwhile_is_refused(tenant_a):
    admin, _, _ = _team(tenant_a)
    decisions = _all_keep(tenant_a)
    MembershipFactory(tenant=tenant_a, role=Role.CLINICAL_REVIEWER)  # joined while the admin read
    with pytest.raises(Conflict, match="members changed"):
        _review(tenant_a, admin, decisions)
    decisions.pop(admin.pk)
    with pytest.raises(Conflict):
        _review(tenant_a, admin, decisions)


def test_removing_the_last_admin_is_refused_and_nothing_is_written(tenant_a):
    admin, marketer, _ = _team(tenant_a)
    decisions = _all_keep(
        tenant_a,
        {admin.pk: Decision("remove", "Testing"), marketer.pk: Decision("remove", "Left")},
    )
    with pytest.raises(Conflict, match="last active tenant admin"):
        _review(tenant_a, admin, decisions)
    with tenant_context(tenant_a):
        assert not AccessReview.objects.exists()
        assert not AccessReviewEntry.objects.exists()
        assert Membership.objects.get(pk=marketer.pk).is_active  # the whole review rolled back


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_only_admins_review(tenant_a, role):
    _team(tenant_a)
    other = MembershipFactory(tenant=tenant_a, role=role)
    with pytest.raises(PermissionRefused):
        access_reviews.access_review_complete(
            tenant=tenant_a, user=other.user, role=role, decisions=_all_keep(tenant_a)
        )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE incidents_accessreviewentry SET decision = 'keep'",
        "DELETE FROM incidents_accessreviewentry",
        "UPDATE incidents_accessreview SET due_on = '2000-01-01'",
        "DELETE FROM incidents_accessreview",
        "TRUNCATE incidents_accessreview CASCADE",
    ],
)
def test_the_evidence_is_append_only_at_the_database(tenant_a, statement):
    admin, marketer, _ = _team(tenant_a)
    _review(tenant_a, admin, _all_keep(tenant_a, {marketer.pk: Decision("remove", "Left")}))
    with (
        tenant_context(tenant_a),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    with tenant_context(tenant_a):
        assert AccessReviewEntry.objects.filter(decision="remove").count() == 1


def test_the_due_date_follows_the_setting_and_the_last_review(tenant_a, settings):
    settings.ACCESS_REVIEW_INTERVAL_DAYS = 30
    admin, _, _ = _team(tenant_a)
    with tenant_context(tenant_a):
        created = timezone.localdate(Tenant.objects.get(pk=tenant_a.pk).created_at)
        assert access_reviews.due_on(tenant=tenant_a) == created + datetime.timedelta(days=30)
    review = _review(tenant_a, admin, _all_keep(tenant_a))
    with tenant_context(tenant_a):
        assert review.due_on == created + datetime.timedelta(days=30)
        expected = timezone.localdate(review.reviewed_at) + datetime.timedelta(days=30)
        assert access_reviews.due_on(tenant=tenant_a) == expected


@pytest.mark.parametrize(
    ("today", "threshold"),
    [
        (D(2026, 1, 1), None),  # 90 days left
        (D(2026, 3, 2), 30),
        (D(2026, 3, 18), 14),
        (D(2026, 3, 25), 7),
        (D(2026, 3, 31), 1),
        (D(2026, 4, 20), 1),  # overdue: still the last threshold
    ],
)
def test_reminder_thresholds(today, threshold):
    assert access_reviews.reminder_threshold(D(2026, 4, 1), today) == threshold


def test_reminders_once_per_threshold_reach_the_alerts(tenant_a):
    _team(tenant_a)
    with tenant_context(tenant_a):
        due = access_reviews.due_on(tenant=tenant_a)
    assert access_reviews.review_reminders_tenant(tenant_a, due - datetime.timedelta(days=20)) == 1
    assert access_reviews.review_reminders_tenant(tenant_a, due - datetime.timedelta(days=20)) == 0
    assert access_reviews.review_reminders_tenant(tenant_a, due + datetime.timedelta(days=3)) == 1
    assert access_reviews.review_reminders_tenant(tenant_a, due - datetime.timedelta(days=60)) == 0
    seal_pending(tenant_a.pk)
    alerts_scan_tenant(tenant_a)
    with tenant_context(tenant_a):
        alerts = list(Alert.objects.filter(rule="access_review_reminder").order_by("created_at"))
    assert sorted(a.severity for a in alerts) == ["critical", "warning"]
    assert any("overdue" in a.summary for a in alerts)


# --- pages -------------------------------------------------------------------------------------


def test_an_admin_reviews_through_the_page(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    marketer = MembershipFactory(tenant=tenant_a, role=Role.MARKETER)
    page = client.get(reverse("incidents:access_review_new"))
    assert marketer.user.email in page.content.decode()
    data = {f"decision-{client.membership.pk}": "keep", f"decision-{marketer.pk}": "remove"}
    refused = client.post(reverse("incidents:access_review_new"), data)
    assert refused.status_code == 400
    assert "Say why" in refused.content.decode()
    data[f"note-{marketer.pk}"] = "No longer runs campaigns"
    done = client.post(reverse("incidents:access_review_new"), data)
    assert done.status_code == 302
    detail = client.get(done["Location"])
    assert "No longer runs campaigns" in detail.content.decode()


@pytest.mark.parametrize(
    ("role", "list_status", "new_status"),
    [
        (Role.TENANT_ADMIN, 200, 200),
        (Role.COMPLIANCE_OFFICER, 200, 403),
        (Role.MARKETER, 403, 403),
        (Role.CLINICAL_REVIEWER, 403, 403),
    ],
)
def test_roles_on_the_pages(member_client, role, list_status, new_status):
    client = member_client(role)
    assert client.get(reverse("incidents:access_reviews")).status_code == list_status
    assert client.get(reverse("incidents:access_review_new")).status_code == new_status


def test_compliance_reads_a_review_and_a_foreign_one_is_404(member_client, tenant_a, tenant_b):
    admin_a, _, _ = _team(tenant_a)
    review = _review(tenant_a, admin_a, _all_keep(tenant_a))
    admin_b, _, _ = _team(tenant_b)
    foreign = _review(tenant_b, admin_b, _all_keep(tenant_b))
    client = member_client(Role.COMPLIANCE_OFFICER)
    own = client.get(reverse("incidents:access_review_detail", args=[review.pk]))
    assert own.status_code == 200
    assert admin_a.user.email in own.content.decode()
    for review_id in (foreign.pk, uuid.uuid4()):
        response = client.get(reverse("incidents:access_review_detail", args=[review_id]))
        assert response.status_code == 404

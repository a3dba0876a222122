"""Four eyes are four eyes (issue 14, item 5): approving a disposal run, a policy version, an exception
or a hold release needs a second person with the permission; a tenant with one such person takes the
documented "sole officer" path, which needs a reason, is audited and is printed on the certificate."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, PermissionRefused
from healthmail.tenants.context import tenant_context
from retention import disposal, policies, services
from retention.models import DestructionCertificate, DisposalRun
from tests.factories import MembershipFactory

from .helpers import YEAR, new_messages, new_tracking_event, officer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)


def _shorter_message_policy(tenant, author):
    """A new message-metadata version with a shorter maximum (six years and a half instead of seven)."""
    policies.policies_ensure_defaults(tenant=tenant)
    current = policies.policy_in_force(tenant=tenant, category="message_metadata")
    data = policies.PolicyInput(
        min_retention_days=current.min_retention_days,
        max_retention_days=6 * 365 + 180,
        action=current.action,
        approval_required=True,
        rationale="Shorter",
        reason="Storage review",
        legal_basis=current.legal_basis,
    )
    return policies.policy_propose(tenant=tenant, actor=author, category="message_metadata", data=data)


def test_a_sole_officer_who_changed_the_policy_must_say_why_to_approve_the_run_and_the_certificate_says_so(
    tenant_a,
):
    only = officer(tenant_a)
    # A tenant admin holds no retention permission: not a second person for these decisions.
    MembershipFactory(tenant=tenant_a, role=Role.TENANT_ADMIN)
    version = _shorter_message_policy(tenant_a, only)
    with pytest.raises(ApplicationError) as refused:
        policies.policy_decide(tenant=tenant_a, actor=only, policy=version, approve=True)
    assert refused.value.code == "sole_officer_reason"
    policies.policy_decide(
        tenant=tenant_a, actor=only, policy=version, approve=True, sole_officer_reason="Only officer (policy)"
    )
    new_messages(
        tenant_a, 2, age=7 * YEAR - datetime.timedelta(days=100)
    )  # due under the shorter policy only
    # A scheduled run: nobody requested it, but the officer wrote the policy version it applies.
    scheduler = Actor.system("retention.scheduler")
    (run,) = disposal.disposal_plan(tenant=tenant_a, actor=scheduler, trigger="scheduled")
    with pytest.raises(ApplicationError) as refused:
        disposal.disposal_approve(tenant=tenant_a, actor=only, run=run)
    assert refused.value.code == "sole_officer_reason"
    disposal.disposal_approve(tenant=tenant_a, actor=only, run=run, sole_officer_reason="Only officer (run)")
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    with tenant_context(tenant_a):
        certificate = DestructionCertificate.objects.get(run=run)
        approval = AuditEvent.objects.get(action="retention.disposal_approve", target_id=str(run.pk))
    assert certificate.document["sole_officer"] == {
        "run_approval": "Only officer (run)",
        "policy_versions": {"message_metadata": "Only officer (policy)"},
    }
    assert approval.details["sole_officer"] is True
    assert approval.details["sole_officer_reason"] == "Only officer (run)"


def test_with_two_officers_the_author_of_the_policy_cannot_approve_the_run_even_with_a_reason(tenant_a):
    author, other = officer(tenant_a), officer(tenant_a)
    version = _shorter_message_policy(tenant_a, author)
    policies.policy_decide(tenant=tenant_a, actor=other, policy=version, approve=True)
    new_messages(tenant_a, 1, age=7 * YEAR)
    (run,) = disposal.disposal_plan(tenant=tenant_a, actor=Actor.system("retention.scheduler"))
    with pytest.raises(PermissionRefused, match="Another compliance officer"):
        disposal.disposal_approve(tenant=tenant_a, actor=author, run=run, sole_officer_reason="alone")
    approved = disposal.disposal_approve(tenant=tenant_a, actor=other, run=run)
    assert (approved.status, approved.approval_sole_officer_reason) == (DisposalRun.Status.APPROVED, "")
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    with tenant_context(tenant_a):
        document = DestructionCertificate.objects.get(run=run).document
    assert document["sole_officer"] == {"run_approval": None, "policy_versions": {}}


def test_the_officer_who_planned_a_run_cannot_approve_it(tenant_a):
    planner, other = officer(tenant_a), officer(tenant_a)
    new_messages(tenant_a, 1, age=8 * YEAR)
    (run,) = disposal.disposal_plan(tenant=tenant_a, actor=planner)
    with pytest.raises(PermissionRefused, match="Another compliance officer must approve this disposal run"):
        disposal.disposal_approve(tenant=tenant_a, actor=planner, run=run, sole_officer_reason="alone")
    assert disposal.disposal_approve(tenant=tenant_a, actor=other, run=run).approved_by == other.user


def test_an_officer_cannot_approve_their_own_exception_while_another_can(tenant_a):
    requester, other = officer(tenant_a), officer(tenant_a)
    event = new_tracking_event(tenant_a, age=YEAR)
    exception = services.exception_request(
        tenant=tenant_a,
        actor=requester,
        category="tracking_events",
        record_ids=[event],
        reason="Dispute",
        extend_until=timezone.localdate() + datetime.timedelta(days=30),
    )
    with pytest.raises(PermissionRefused, match="Another compliance officer"):
        services.exception_decide(
            tenant=tenant_a, actor=requester, exception=exception, approve=True, sole_officer_reason="alone"
        )
    decided = services.exception_decide(tenant=tenant_a, actor=other, exception=exception, approve=True)
    assert (decided.status, decided.sole_officer_reason) == ("approved", "")


def test_a_sole_officer_releases_a_hold_they_asked_to_release_only_with_a_reason(tenant_a):
    from retention import holds

    only = officer(tenant_a)
    hold = holds.hold_create(
        tenant=tenant_a,
        actor=only,
        matter="M",
        reason="R",
        counsel="C",
        scope=holds.HoldScope(categories=("contacts",)),
    )
    holds.hold_release_request(tenant=tenant_a, actor=only, hold=hold, reason="Settled")
    with pytest.raises(ApplicationError, match="say why no second person can"):
        holds.hold_release(tenant=tenant_a, actor=only, hold=hold)
    released = holds.hold_release(tenant=tenant_a, actor=only, hold=hold, sole_officer_reason="Only officer")
    assert (released.status, released.release_sole_officer_reason) == ("released", "Only officer")
    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(action="legal_hold.release", target_id=str(hold.pk))
    assert event.details["sole_officer_reason"] == "Only officer"

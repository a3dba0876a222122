"""Versioned policies: sourced defaults, refusals, four eyes, the version in force at any date."""

import datetime

import pytest
from django.utils import timezone

from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from retention.models import RetentionPolicy
from retention.policies import (
    PolicyInput,
    policies_ensure_defaults,
    policy_decide,
    policy_in_force,
    policy_propose,
)
from retention.registry import all_categories

from .helpers import officer

pytestmark = pytest.mark.django_db
YEARS = 365


def _input(**changes) -> PolicyInput:
    values = dict(
        min_retention_days=6 * YEARS,
        max_retention_days=8 * YEARS,
        action="destroy",
        approval_required=True,
        rationale="Eight years covers our states",
        reason="Annual review",
    )
    return PolicyInput(**{**values, **changes})


def test_every_category_ships_a_default_with_its_legal_basis(tenant_a):
    policies_ensure_defaults(tenant=tenant_a)
    keys = {c.key for c in all_categories()}
    assert {
        "message_content",
        "message_metadata",
        "portal_messages",
        "contacts",
        "consent_records",
        "tracking_events",
        "audit_events",
        "exports",
        "webhook_logs",
    } <= keys
    with tenant_context(tenant_a):
        defaults = {p.category: p for p in RetentionPolicy.objects.filter(tenant=tenant_a)}
    assert set(defaults) == keys
    for policy in defaults.values():
        assert policy.is_shipped_default
        assert policy.version == 1
        assert policy.rationale
        assert policy.legal_basis
        assert all(b["citation"] for b in policy.legal_basis)
    citations = {b["citation"] for b in defaults["audit_events"].legal_basis}
    assert "45 CFR 164.316(b)(2)(i)" in citations
    assert defaults["audit_events"].min_retention_days == 6 * YEARS


def test_a_maximum_below_the_minimum_is_refused(tenant_a):
    with pytest.raises(ApplicationError, match="shorter than the minimum"):
        policy_propose(
            tenant=tenant_a,
            actor=officer(tenant_a),
            category="tracking_events",
            data=_input(min_retention_days=400, max_retention_days=300),
        )


def test_a_minimum_below_the_law_is_refused_with_its_citation(tenant_a):
    with pytest.raises(ApplicationError, match=r"164\.316"):
        policy_propose(
            tenant=tenant_a,
            actor=officer(tenant_a),
            category="message_metadata",
            data=_input(min_retention_days=2 * YEARS, max_retention_days=3 * YEARS),
        )


def test_a_legal_basis_row_binds_the_minimum(tenant_a):
    row = {"citation": "Tex. rule", "rule": "seven years", "years": 7, "applies": ""}
    with pytest.raises(ApplicationError, match=r"Tex\. rule"):
        policy_propose(
            tenant=tenant_a,
            actor=officer(tenant_a),
            category="message_content",
            data=_input(legal_basis=[row]),
        )


def test_append_only_evidence_cannot_be_set_to_destroy(tenant_a):
    with pytest.raises(ApplicationError, match="review"):
        policy_propose(tenant=tenant_a, actor=officer(tenant_a), category="consent_records", data=_input())


def test_versions_need_a_second_officer_and_the_effective_version_is_known_at_any_date(tenant_a):
    author, approver = officer(tenant_a), officer(tenant_a)
    policies_ensure_defaults(tenant=tenant_a)
    before = timezone.now()
    version = policy_propose(tenant=tenant_a, actor=author, category="message_content", data=_input())
    assert policy_in_force(tenant=tenant_a, category="message_content").version == 1  # pending: not yet
    with pytest.raises(ApplicationError, match="Another compliance officer"):
        policy_decide(tenant=tenant_a, actor=author, policy=version, approve=True)
    policy_decide(tenant=tenant_a, actor=approver, policy=version, approve=True)
    assert policy_in_force(tenant=tenant_a, category="message_content").version == 2
    assert policy_in_force(tenant=tenant_a, category="message_content", at=before).version == 1
    with tenant_context(tenant_a):
        statuses = dict(
            RetentionPolicy.objects.filter(category="message_content").values_list("version", "status")
        )
    assert statuses == {1: "superseded", 2: "active"}


def test_a_sole_officer_may_approve_their_own_version_and_it_is_recorded(tenant_a):
    from audit.models import AuditEvent

    only = officer(tenant_a)
    version = policy_propose(
        tenant=tenant_a,
        actor=only,
        category="webhook_logs",
        data=_input(min_retention_days=30, max_retention_days=200, approval_required=False),
    )
    with pytest.raises(ApplicationError, match="say why no second person can") as refused:
        policy_decide(tenant=tenant_a, actor=only, policy=version, approve=True)
    assert refused.value.code == "sole_officer_reason"
    approved = policy_decide(
        tenant=tenant_a,
        actor=only,
        policy=version,
        approve=True,
        sole_officer_reason="Only officer until May",
    )
    assert approved.sole_officer_reason == "Only officer until May"
    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(action="retention.policy_approve")
    assert event.details == {
        "category": "webhook_logs",
        "version": 2,
        "sole_officer": True,
        "sole_officer_reason": "Only officer until May",
    }


def test_policies_are_never_back_dated(tenant_a):
    author, approver = officer(tenant_a), officer(tenant_a)
    version = policy_propose(
        tenant=tenant_a,
        actor=author,
        category="exports",
        data=_input(min_retention_days=0, max_retention_days=30, approval_required=False),
    )
    approved = policy_decide(tenant=tenant_a, actor=approver, policy=version, approve=True)
    assert approved.effective_from >= version.created_at
    assert (
        policy_in_force(
            tenant=tenant_a, category="exports", at=approved.effective_from - datetime.timedelta(seconds=1)
        ).version
        == 1
    )

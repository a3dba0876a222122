"""The send gate's decision table (purpose x consent x authorization x suppression x state), and the
rules around it: BAA, contact, pause, topics, state mode, waivers, re-imported addresses."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent import gate, services, suppressions, waivers
from consent.gate import may_send, may_send_batch
from healthmail.tenants import services as tenant_services
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement, Service
from tests.factories import BaaFactory, TenantFactory

from .conftest import evidence, new_contact, staff_actor
from .scenarios import build, topic_for

pytestmark = pytest.mark.django_db

T, P, OPS, M, R, F = "treatment", "payment", "operations", "marketing", "research", "fundraising"
G, X = "granted", "revoked"

# purpose, uses_phi, consent, authorization, suppression, contact state → expected decision code
TABLE = [
    (T, True, None, None, None, "", "transactional"),
    (P, False, None, None, None, "WA", "transactional"),
    (OPS, True, X, None, "complaint", "", "transactional"),
    (T, False, None, None, "unsubscribe_all", "", "transactional"),
    (T, True, None, None, "hard_bounce", "", "suppressed_hard_bounce"),
    (P, True, None, None, "legal_request", "", "suppressed_legal_request"),
    (OPS, False, None, None, "manual", "", "suppressed_manual"),
    (M, False, None, None, None, "", "no_opt_in"),
    (M, False, G, None, None, "", "opted_in"),
    (M, False, X, None, None, "", "opt_in_revoked"),
    (M, True, G, None, None, "", "no_authorization"),
    (M, True, G, "valid", None, "", "opted_in"),
    (M, True, G, "pending", None, "", "authorization_not_yet_effective"),
    (M, True, G, "expired", None, "", "authorization_expired"),
    (M, True, G, "revoked", None, "", "authorization_revoked"),
    (M, True, None, "valid", None, "", "no_opt_in"),
    (M, False, G, None, "complaint", "", "suppressed_complaint"),
    (M, True, G, "valid", "unsubscribe_all", "", "suppressed_unsubscribe_all"),
    (M, False, G, None, None, "WA", "state_health_data_consent_required"),
    (M, False, G, "valid", None, "WA", "opted_in"),
    (M, False, G, None, None, "NV", "state_health_data_consent_required"),
    (M, False, G, None, None, "CT", "state_health_data_consent_required"),
    (M, False, G, None, None, "CA", "opted_in"),
    (M, False, G, None, None, "TX", "opted_in"),
    (M, True, G, "valid", "hard_bounce", "WA", "suppressed_hard_bounce"),
    (F, False, None, None, None, "", "not_opted_out"),
    (F, True, None, None, None, "", "not_opted_out"),
    (F, False, X, None, None, "", "opted_out"),
    (F, False, None, None, None, "WA", "state_opt_in_required"),
    (F, False, G, None, None, "NV", "not_opted_out"),
    (F, False, None, None, "unsubscribe_all", "", "suppressed_unsubscribe_all"),
    (R, False, None, None, None, "", "not_opted_out"),
    (R, True, None, None, None, "", "no_authorization"),
    (R, True, None, "valid", None, "", "not_opted_out"),
    (R, False, X, None, None, "", "opted_out"),
    (R, False, None, None, None, "TX", "not_opted_out"),
    (R, False, None, None, "complaint", "", "suppressed_complaint"),
]
ALLOWED = {"transactional", "opted_in", "not_opted_out"}


@pytest.mark.parametrize(
    ("purpose", "uses_phi", "consent", "authorization", "suppression", "state", "code"), TABLE
)
def test_decision_table(tenant_a, purpose, uses_phi, consent, authorization, suppression, state, code):
    contact = build(
        tenant_a,
        purpose=purpose,
        consent=consent,
        authorization=authorization,
        suppressions=(suppression,) if suppression else (),
        state=state,
    )
    topic = topic_for(tenant_a, purpose) if purpose in (M, R, F) else None
    decision = may_send(contact=contact, purpose=purpose, uses_phi=uses_phi, topic=topic)
    assert decision.code == code, decision.reason
    assert decision.allowed is (code in ALLOWED)
    assert decision.reason
    batch = may_send_batch(
        tenant=tenant_a, contact_ids=[contact.pk], purpose=purpose, uses_phi=uses_phi, topic=topic
    )
    assert batch[contact.pk] == decision


@pytest.mark.parametrize("purpose", [T, M])
def test_without_a_baa_every_send_is_refused(purpose):
    tenant = TenantFactory()
    contact = build(tenant, consent=G, direct=True)  # no BAA: the contacts service would refuse intake
    decision = may_send(contact=contact, purpose=purpose, uses_phi=False, topic=topic_for(tenant, M))
    assert (decision.allowed, decision.code) == (False, "baa_not_in_force")
    assert "Business Associate Agreement" in decision.reason


def test_a_baa_for_transactional_email_only_refuses_marketing():
    tenant = TenantFactory()
    BaaFactory(tenant=tenant, services=[Service.TRANSACTIONAL_EMAIL])
    contact = build(tenant, consent=G)
    assert may_send(contact=contact, purpose=T, uses_phi=True).allowed
    refused = may_send(contact=contact, purpose=M, uses_phi=False, topic=topic_for(tenant, M))
    assert refused.code == "baa_not_in_force"


def test_a_suspended_tenant_sends_nothing(tenant_a):
    contact = build(tenant_a)
    tenant_services.tenant_set_status(actor=staff_actor(), tenant=tenant_a, status="suspended", reason="test")
    assert may_send(contact=contact, purpose=T, uses_phi=False).code == "baa_not_in_force"


def test_a_terminated_baa_stops_sending(tenant_a):
    contact = build(tenant_a)
    with tenant_context(tenant_a):
        BusinessAssociateAgreement.objects.update(terminated_on="2000-01-01")
    assert may_send(contact=contact, purpose=T, uses_phi=False).code == "baa_not_in_force"


def test_contact_problems(tenant_a, tenant_b):
    deleted = build(tenant_a, deleted=True)
    no_email = build(tenant_a, has_email=False)
    foreign = build(tenant_b)
    assert may_send(contact=deleted, purpose=T, uses_phi=False).code == "contact_deleted"
    assert may_send(contact=no_email, purpose=T, uses_phi=False).code == "no_email_address"
    batch = may_send_batch(
        tenant=tenant_a, contact_ids=[deleted.pk, no_email.pk, foreign.pk], purpose=T, uses_phi=False
    )
    assert [batch[c.pk].code for c in (deleted, no_email, foreign)] == [
        "contact_deleted",
        "no_email_address",
        "contact_not_found",
    ]


def test_a_suppressed_address_stays_suppressed_when_re_imported(tenant_a):
    suppressions.suppression_add(
        tenant=tenant_a, actor=staff_actor(), reason="legal_request", email="Returning.Patient@Example.org"
    )
    contact = new_contact(tenant_a, email="returning.patient@example.org")
    assert may_send(contact=contact, purpose=T, uses_phi=False).code == "suppressed_legal_request"
    batch = may_send_batch(tenant=tenant_a, contact_ids=[contact.pk], purpose=T, uses_phi=False)
    assert batch[contact.pk].code == "suppressed_legal_request"


def test_a_removed_suppression_no_longer_blocks(tenant_a):
    contact = build(tenant_a, suppressions=("manual",))
    entry = suppressions.suppressions_active(tenant=tenant_a, contact=contact)[0]
    suppressions.suppression_remove(
        tenant=tenant_a, actor=staff_actor(), suppression=entry, reason="added by mistake"
    )
    assert may_send(contact=contact, purpose=T, uses_phi=False).allowed


@pytest.mark.parametrize(("paused", "code"), [("future", "paused"), ("past", "opted_in")])
def test_a_pause_stops_marketing_until_its_date(tenant_a, paused, code):
    contact = build(tenant_a, consent=G, paused=paused)
    assert may_send(contact=contact, purpose=M, uses_phi=False, topic=topic_for(tenant_a, M)).code == code
    assert may_send(contact=contact, purpose=T, uses_phi=False).allowed


def test_topics_must_fit_the_purpose(tenant_a, tenant_b):
    contact = build(tenant_a, consent=G)
    assert may_send(contact=contact, purpose=M, uses_phi=False).code == "topic_required"
    assert (
        may_send(contact=contact, purpose=M, uses_phi=False, topic=topic_for(tenant_a, R)).code
        == "topic_mismatch"
    )
    foreign_topic = topic_for(tenant_b, M)
    assert may_send(contact=contact, purpose=M, uses_phi=False, topic=foreign_topic).code == "topic_mismatch"


def _settings(tenant, *, states, mode="strictest", waivers=False):
    services.consent_settings_update(
        tenant=tenant,
        actor=staff_actor(),
        operating_states=states,
        state_mode=mode,
        allow_unencrypted_waivers=waivers,
        reminder_days_before_expiry=30,
    )


def test_by_default_the_strictest_operating_state_applies_to_everyone(tenant_a):
    _settings(tenant_a, states=["CA", "WA"])
    california = build(tenant_a, consent=G, state="CA")
    unknown = build(tenant_a, consent=G)
    for contact in (california, unknown):
        decision = may_send(contact=contact, purpose=M, uses_phi=False, topic=topic_for(tenant_a, M))
        assert decision.code == "state_health_data_consent_required"
        assert "WA" in decision.reason


def test_per_contact_mode_applies_each_contacts_own_state(tenant_a):
    _settings(tenant_a, states=["CA", "WA"], mode="per_contact")
    topic = topic_for(tenant_a, M)
    california = build(tenant_a, consent=G, state="CA")
    washington = build(tenant_a, consent=G, state="WA")
    unknown = build(tenant_a, consent=G)  # no known state: the operating states' strictest rule
    assert may_send(contact=california, purpose=M, uses_phi=False, topic=topic).code == "opted_in"
    assert (
        may_send(contact=washington, purpose=M, uses_phi=False, topic=topic).code
        == "state_health_data_consent_required"
    )
    assert (
        may_send(contact=unknown, purpose=M, uses_phi=False, topic=topic).code
        == "state_health_data_consent_required"
    )


def test_unencrypted_waiver_is_honoured_only_where_allowed_and_for_its_purposes(tenant_a):
    contact = build(tenant_a)
    risk = services.consent_text_current(tenant=tenant_a, kind="unencrypted_waiver")
    with pytest.raises(services.ConsentError):
        waivers.waiver_request(tenant=tenant_a, contact=contact, purposes=[T], evidence=evidence(text=risk))
    _settings(tenant_a, states=[], waivers=True)
    waivers.waiver_request(tenant=tenant_a, contact=contact, purposes=[T], evidence=evidence(text=risk))
    assert may_send(contact=contact, purpose=T, uses_phi=True).unencrypted_allowed
    assert not may_send(contact=contact, purpose=P, uses_phi=True).unencrypted_allowed
    _settings(tenant_a, states=[], waivers=False)  # the tenant stops honouring waivers
    assert not may_send(contact=contact, purpose=T, uses_phi=True).unencrypted_allowed
    _settings(tenant_a, states=[], waivers=True)
    waivers.waiver_withdraw(tenant=tenant_a, contact=contact, evidence=evidence())
    assert not may_send(contact=contact, purpose=T, uses_phi=True).unencrypted_allowed
    batch = may_send_batch(tenant=tenant_a, contact_ids=[contact.pk], purpose=T, uses_phi=True)
    assert not batch[contact.pk].unencrypted_allowed


def test_the_batch_gate_runs_one_query_per_batch(tenant_a):
    topic = topic_for(tenant_a, M)
    few = [build(tenant_a, consent=G).pk for _ in range(2)]
    many = few + [build(tenant_a, consent=G, suppressions=("complaint",)).pk for _ in range(20)]

    def count(ids) -> int:
        with CaptureQueriesContext(connection) as queries:
            decisions = may_send_batch(
                tenant=tenant_a, contact_ids=ids, purpose=M, uses_phi=False, topic=topic
            )
        assert len(decisions) == len(ids)
        return len([q for q in queries.captured_queries if "contacts_contact" in q["sql"]]), len(queries)

    assert count(few) == count(many)
    assert count(many)[0] == 1


def test_the_batch_gate_splits_large_batches(tenant_a, monkeypatch):
    monkeypatch.setattr(gate, "BATCH_SIZE", 2)
    ids = [build(tenant_a).pk for _ in range(5)]
    decisions = may_send_batch(tenant=tenant_a, contact_ids=ids, purpose=T, uses_phi=False)
    assert all(decisions[i].allowed for i in ids)

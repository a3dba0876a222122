"""Consent history: append-only at the database, the maintained state, batch import of evidence,
suppression bookkeeping and the state rules table."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from consent import services, state_rules, suppressions
from consent.models import ConsentEvent, ConsentState, Suppression
from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events

from .conftest import evidence, new_contact, staff_actor

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_consentevent SET kind = 'granted'",
        "DELETE FROM consent_consentevent",
        "TRUNCATE consent_consentevent CASCADE",
        "UPDATE consent_authorizationtext SET title = 'changed'",
        "DELETE FROM consent_consenttext",
    ],
)
def test_history_is_append_only_at_the_database(tenant_a, contact, topics, text, statement):
    services.consent_revoke(tenant=tenant_a, contact=contact, topic=topics["research"], evidence=evidence())
    services.consent_text_current(tenant=tenant_a, kind="opt_in")
    with (
        tenant_context(tenant_a),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    with tenant_context(tenant_a):
        assert ConsentEvent.objects.count() == 1


def test_the_latest_event_wins_and_a_late_older_one_is_only_history(tenant_a, contact, topics):
    topic = topics["marketing_newsletters"]
    now = timezone.now()
    services.consent_grant(tenant=tenant_a, contact=contact, topic=topic, evidence=evidence(occurred_at=now))
    services.consent_revoke(
        tenant=tenant_a,
        contact=contact,
        topic=topic,
        evidence=evidence(occurred_at=now + datetime.timedelta(seconds=1)),
    )
    # Paper evidence of an earlier opt-in arrives later: kept, but it does not undo the revocation.
    services.consent_import_evidence(
        tenant=tenant_a,
        actor=staff_actor(),
        rows=[(contact.pk, topic.key, "paper", now - datetime.timedelta(days=9))],
    )
    with tenant_context(tenant_a):
        assert ConsentEvent.objects.filter(contact=contact).count() == 3
        state = ConsentState.objects.get(contact=contact, topic=topic)
    assert state.status == "revoked"


def test_import_evidence_is_batched_and_validated(tenant_a, topics, django_assert_max_num_queries):
    contacts = [new_contact(tenant_a) for _ in range(30)]
    when = timezone.now() - datetime.timedelta(days=3)
    rows = [(c.pk, "marketing_newsletters", "import", when) for c in contacts]
    rows += [(c.pk, "research", "paper", when) for c in contacts]
    with django_assert_max_num_queries(25):
        assert services.consent_import_evidence(tenant=tenant_a, actor=staff_actor(), rows=rows) == 60
    with tenant_context(tenant_a):
        assert ConsentState.objects.filter(status="granted").count() == 60
    [event] = audit_events(tenant=tenant_a, action="consent.import")
    assert event.details["events"] == 60

    with pytest.raises(services.ConsentError, match="Unknown consent topic"):
        services.consent_import_evidence(
            tenant=tenant_a, actor=staff_actor(), rows=[(contacts[0].pk, "nope", "import", when)]
        )
    with pytest.raises(NotFound):
        services.consent_import_evidence(
            tenant=tenant_a, actor=staff_actor(), rows=[(uuid.uuid4(), "research", "import", when)]
        )
    with tenant_context(tenant_a):
        assert ConsentEvent.objects.count() == 60  # nothing partial


def test_import_cannot_touch_another_tenants_contact(tenant_a, tenant_b):
    foreign = new_contact(tenant_b)
    with pytest.raises(NotFound):
        services.consent_import_evidence(
            tenant=tenant_a, actor=staff_actor(), rows=[(foreign.pk, "research", "import", timezone.now())]
        )


def test_suppression_is_kept_once_and_removal_keeps_the_record(tenant_a, contact):
    first = suppressions.suppression_add(
        tenant=tenant_a, actor=staff_actor(), reason="complaint", contact=contact
    )
    again = suppressions.suppression_add(
        tenant=tenant_a, actor=staff_actor(), reason="complaint", contact=contact
    )
    assert first.pk == again.pk
    assert first.email_index == contact.email_index  # keyed by the address too
    with pytest.raises(services.ConsentError):
        suppressions.suppression_remove(tenant=tenant_a, actor=staff_actor(), suppression=first, reason=" ")
    suppressions.suppression_remove(
        tenant=tenant_a, actor=staff_actor(), suppression=first, reason="resolved"
    )
    with tenant_context(tenant_a):
        assert Suppression.objects.get(pk=first.pk).removed_reason == "resolved"
    assert [e.action for e in audit_events(tenant=tenant_a, action__startswith="suppression.")] == [
        "suppression.add",
        "suppression.remove",
    ]


def test_suppression_by_email_finds_the_contact(tenant_a):
    contact = new_contact(tenant_a, email="someone@example.org")
    entry = suppressions.suppression_add(
        tenant=tenant_a, actor=staff_actor(), reason="manual", email="SOMEONE@example.org "
    )
    assert entry.contact_id == contact.pk


def test_every_rule_cites_its_source():
    for rule in [state_rules.DEFAULT, *state_rules.RULES.values()]:
        assert rule.source
        assert rule.law
    assert {"CA", "WA", "NV", "TX", "CT"} <= set(state_rules.RULES)


def test_the_most_restrictive_rule_wins(monkeypatch):
    monkeypatch.setitem(
        state_rules.RULES,
        "ZZ",
        state_rules.StateRule(code="ZZ", name="Z", law="Z", source="z", waiting_period_days=7),
    )
    combined = state_rules.combine(["CA", "TX", "ZZ", "xx"])
    assert combined.codes == ("default", "CA", "TX", "ZZ")
    assert combined.waiting_period_days == 7
    assert not combined.opt_in_required_for_all_promotion
    assert len(combined.disclosures) == 2
    assert state_rules.combine(["ca", "WA"]).opt_in_required_for_all_promotion
    assert state_rules.combine([]).codes == ("default",)


@pytest.mark.parametrize(
    ("mode", "operating", "own", "expected"),
    [
        ("strictest", ["CA", "WA"], "TX", ["CA", "WA", "TX"]),
        ("strictest", ["CA"], "", ["CA"]),
        ("per_contact", ["CA", "WA"], "TX", ["TX"]),
        ("per_contact", ["CA", "WA"], "", ["CA", "WA"]),
    ],
)
def test_which_states_apply(mode, operating, own, expected):
    assert state_rules.applicable_codes(mode=mode, operating_states=operating, contact_state=own) == expected


def test_settings_refuse_bad_state_codes(tenant_a):
    with pytest.raises(services.ConsentError, match="two-letter"):
        services.consent_settings_update(
            tenant=tenant_a,
            actor=staff_actor(),
            operating_states=["California"],
            state_mode="strictest",
            allow_unencrypted_waivers=False,
            reminder_days_before_expiry=30,
        )

"""The batch gate (one SQL query) and the single gate (ORM reads) agree on random data."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.gate import may_send, may_send_batch
from consent.models import Purpose, Suppression

from .scenarios import build, topic_for

pytestmark = pytest.mark.django_db

# Weighted towards contacts that reach the consent rules (an address, not deleted, not suppressed),
# where the two loaders have the most to disagree about.
contact_situations = st.fixed_dictionaries(
    {
        "purpose": st.sampled_from(
            [Purpose.MARKETING, Purpose.MARKETING, Purpose.RESEARCH, Purpose.FUNDRAISING]
        ),
        "consent": st.sampled_from(["granted", "granted", None, "revoked"]),
        "authorization": st.sampled_from([None, "valid", "pending", "expired", "revoked"]),
        "suppressions": st.one_of(
            st.just(()),
            st.lists(st.sampled_from(Suppression.Reason.values), max_size=2, unique=True).map(tuple),
        ),
        "state": st.sampled_from(["", "WA", "CA", "TX", "CT", "NV", "XX"]),
        "paused": st.sampled_from([None, None, None, "past", "future"]),
        "deleted": st.sampled_from([False] * 5 + [True]),
        "has_email": st.sampled_from([True] * 5 + [False]),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(situations=st.lists(contact_situations, min_size=1, max_size=6))
def test_batch_gate_matches_single_gate(tenant_a, situations):
    with transaction.atomic():
        contacts = [build(tenant_a, **situation) for situation in situations]
        ids = [c.pk for c in contacts]
        for purpose in Purpose.values:
            for uses_phi in (False, True):
                topic = (
                    topic_for(tenant_a, purpose)
                    if purpose in ("marketing", "research", "fundraising")
                    else None
                )
                batch = may_send_batch(
                    tenant=tenant_a, contact_ids=ids, purpose=purpose, uses_phi=uses_phi, topic=topic
                )
                for contact in contacts:
                    single = may_send(contact=contact, purpose=purpose, uses_phi=uses_phi, topic=topic)
                    assert batch[contact.pk] == single, (purpose, uses_phi)
        transaction.set_rollback(True)

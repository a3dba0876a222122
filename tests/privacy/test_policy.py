"""The disclosure policy's own rules: determinism, per-tenant parameters (stricter only), exact
answers for PHI readers, honest zeros, the Laplace draw, and the budget."""

from __future__ import annotations

import statistics

import pytest

from healthmail import disclosure
from healthmail.disclosure import QueryRefused, Viewer, disclose
from segmentation import services
from tests.segmentation.conftest import make_contacts

pytestmark = pytest.mark.django_db
MARKETER = Viewer(key="user:1", phi=False)
DIABETES = {"field": "condition", "op": "in", "value": ["E11.9"]}


def test_the_same_query_always_gets_the_same_answer(tenant_a):
    answers = {
        disclose(500, tenant=tenant_a, viewer=MARKETER, query="q", sensitive=True).display for _ in range(20)
    }
    assert len(answers) == 1
    many = {
        disclose(500, tenant=tenant_a, viewer=MARKETER, query=f"q{n}", sensitive=True).value
        for n in range(40)
    }
    assert len(many) > 1  # different queries, independent draws
    assert all(value % 10 == 0 for value in many)  # rounded to the base


def test_noise_is_laplace_with_the_configured_scale(tenant_a):
    draws = [disclosure.noise(tenant_a, f"label-{n}", 5.0) for n in range(4000)]
    assert abs(statistics.mean(draws)) < 0.5
    assert 4.5 < statistics.mean(abs(d) for d in draws) < 5.5  # E|L| = b


def test_a_tenant_may_be_stricter_never_looser(tenant_a):
    tenant_a.disclosure_k, tenant_a.disclosure_rounding_base = 25, 5
    policy = disclosure.policy_for(tenant_a)
    assert (policy.k, policy.rounding_base) == (25, 10)
    assert (
        disclose(20, tenant=tenant_a, viewer=MARKETER, query="x", sensitive=False).display == "fewer than 25"
    )
    tenant_a.disclosure_k = 3
    assert disclosure.policy_for(tenant_a).k == 11


def test_phi_readers_get_exact_counts_and_zero_is_said(tenant_a):
    admin = Viewer(key="user:2", phi=True)
    assert disclose(1234, tenant=tenant_a, viewer=admin, query="q", sensitive=True).display == "1,234"
    assert disclose(4, tenant=tenant_a, viewer=admin, query="q", sensitive=True).display == "fewer than 11"
    assert disclose(0, tenant=tenant_a, viewer=MARKETER, query="q", sensitive=False).empty
    assert not disclose(0, tenant=tenant_a, viewer=MARKETER, query="q", sensitive=True).empty


def test_the_budget_refuses_new_queries_but_not_repeats(tenant_a, settings):
    settings.DISCLOSURE_BUDGET = 2
    settings.DISCLOSURE_COMPARED_QUERIES = 0  # this test is about the budget alone
    make_contacts(tenant_a, 60, seed=3)
    first, second, third = (
        {"all": [DIABETES, {"field": "age", "op": "gte", "value": age}]} for age in (0, 40, 70)
    )

    def count(definition):
        return services.segment_count(
            tenant=tenant_a, viewer=MARKETER, definition=definition, breakdown=False
        )

    count(first)
    count(second)
    with pytest.raises(QueryRefused) as refused:
        count(third)
    assert refused.value.code == "disclosure_budget_spent"
    assert count(first).display == count(first).display  # a repeat costs nothing and never changes
    other = Viewer(key="user:99", phi=False)
    services.segment_count(tenant=tenant_a, viewer=other, definition=third, breakdown=False)  # per actor

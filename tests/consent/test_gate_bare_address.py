"""The send rule for email to an address without a contact (an API send naming no contact) lives in
the consent gate, beside the contact rule: transactional purposes only, a BAA in force, and the
address's suppressions. The delivery worker and the transactional API both ask it."""

from __future__ import annotations

import pytest

from consent import suppressions
from consent.gate import may_send_to_addresses
from healthmail.crypto.blind import blind_index
from healthmail.tenants.models import Service
from tests.factories import BaaFactory, TenantFactory

from .conftest import staff_actor

pytestmark = pytest.mark.django_db

ADDRESS = "pat.synthetic@example.org"


def _ask(tenant, purpose, address=ADDRESS):
    index = blind_index(tenant, "email", address)
    return may_send_to_addresses(tenant=tenant, address_indexes=[index], purpose=purpose)[index]


@pytest.mark.parametrize(
    ("purpose", "suppression", "expected"),
    [
        ("treatment", None, "transactional"),
        ("payment", "complaint", "transactional"),  # a complaint ends promotion, not billing notices
        ("operations", "unsubscribe_all", "transactional"),
        ("treatment", "hard_bounce", "suppressed_hard_bounce"),
        ("payment", "legal_request", "suppressed_legal_request"),
        ("operations", "manual", "suppressed_manual"),
        ("marketing", None, "no_contact"),
        ("fundraising", None, "no_contact"),
        ("research", None, "no_contact"),
    ],
)
def test_the_bare_address_table(tenant_a, purpose, suppression, expected):
    if suppression:
        suppressions.suppression_add(tenant=tenant_a, actor=staff_actor(), reason=suppression, email=ADDRESS)
    decision = _ask(tenant_a, purpose)
    assert decision.code == expected
    assert decision.allowed is (expected == "transactional")


def test_another_tenants_suppression_does_not_apply(tenant_a, tenant_b):
    suppressions.suppression_add(tenant=tenant_b, actor=staff_actor(), reason="hard_bounce", email=ADDRESS)
    assert _ask(tenant_a, "treatment").allowed
    assert _ask(tenant_b, "treatment").code == "suppressed_hard_bounce"


def test_a_removed_suppression_no_longer_blocks(tenant_a):
    entry = suppressions.suppression_add(tenant=tenant_a, actor=staff_actor(), reason="manual", email=ADDRESS)
    suppressions.suppression_remove(
        tenant=tenant_a, actor=staff_actor(), suppression=entry, reason="patient asked"
    )
    assert _ask(tenant_a, "treatment").allowed


def test_without_a_transactional_baa_nothing_goes():
    tenant = TenantFactory()
    BaaFactory(tenant=tenant, services=[Service.MARKETING_EMAIL])
    assert _ask(tenant, "treatment").code == "baa_not_in_force"


def test_many_addresses_take_one_answer_each(tenant_a):
    suppressions.suppression_add(
        tenant=tenant_a, actor=staff_actor(), reason="hard_bounce", email="gone@example.org"
    )
    indexes = [blind_index(tenant_a, "email", a) for a in (ADDRESS, "gone@example.org")]
    answers = may_send_to_addresses(tenant=tenant_a, address_indexes=indexes, purpose="treatment")
    assert [answers[i].code for i in indexes] == ["transactional", "suppressed_hard_bounce"]


def test_an_unknown_purpose_is_a_programming_error(tenant_a):
    with pytest.raises(ValueError, match="unknown purpose"):
        _ask(tenant_a, "sales")

"""RELIABILITY C4 as a state machine: messages age, holds come and go, disposal runs at random
moments; at every step no held record was destroyed, and after each run no expired record that
nothing protects is left."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from delivery.models import Message
from healthmail.tenants.context import tenant_context
from retention import disposal, holds
from retention.models import LegalHold
from tests.factories import BaaFactory, TenantFactory

from .helpers import new_contact, new_messages, officer

pytestmark = pytest.mark.django_db
DAY = datetime.timedelta(days=1)
MAX = 7 * 365  # the shipped default for message metadata


class RetentionMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()  # each example rolls back: the database stays small
        self.tenant = TenantFactory()
        BaaFactory(tenant=self.tenant)
        self.actor = officer(self.tenant)
        self.contacts = [new_contact(self.tenant) for _ in range(2)]
        self.ages: dict = {}  # message id -> age in days at offset 0
        self.contact_of: dict = {}
        self.frozen: dict = {}  # active hold id -> the live messages it covered when placed
        self.offset = 0

    @rule(age=st.integers(0, 3000), who=st.integers(0, 1))
    def add_message(self, age, who):
        (message,) = new_messages(self.tenant, 1, age=age * DAY, contact=self.contacts[who])
        self.ages[message.pk] = age
        self.contact_of[message.pk] = who

    @rule(who=st.integers(0, 1), category=st.sampled_from([None, "message_metadata", "contacts"]))
    def place_hold(self, who, category):
        hold = holds.hold_create(
            tenant=self.tenant,
            actor=self.actor,
            matter="M",
            reason="R",
            counsel="C",
            scope=holds.HoldScope(
                contact_ids=(self.contacts[who].pk,), categories=(category,) if category else ()
            ),
        )
        covers_messages = category != "contacts"
        self.frozen[hold.pk] = {
            m.pk for m in self._live() if covers_messages and self.contact_of[m.pk] == who
        }

    @precondition(lambda self: self.ages)
    @rule()
    def release_a_hold(self):
        with tenant_context(self.tenant):
            hold = LegalHold.objects.filter(status="active").first()
        if hold:
            holds.hold_release(tenant=self.tenant, actor=self.actor, hold=hold, reason="settled")
            self.frozen.pop(hold.pk, None)

    @rule(days=st.integers(1, 1500))
    def time_passes(self, days):
        self.offset += days

    @rule()
    def run_disposal(self):
        messages = self._live()
        held_now = {m.pk for m in messages if holds.holds_for(m)}
        as_of = timezone.now() + self.offset * DAY
        for run in disposal.disposal_plan(tenant=self.tenant, actor=self.actor, as_of=as_of):
            if run.status == "awaiting_approval":
                disposal.disposal_approve(tenant=self.tenant, actor=self.actor, run=run)
            disposal.disposal_run_execute(tenant_id=self.tenant.pk, run_id=run.pk, batch_size=2)
        remaining = {m.pk for m in self._live()}
        assert held_now <= remaining, "a held record was destroyed"
        for message in messages:
            age = self.ages[message.pk] + self.offset
            if message.pk not in held_now and age > MAX + 1:
                assert message.pk not in remaining, "an expired, unprotected record was kept"
            if age < MAX - 1:
                assert message.pk in remaining, "a record was destroyed before its maximum"

    def _live(self) -> list[Message]:
        with tenant_context(self.tenant):
            return list(Message.objects.filter(pk__in=list(self.ages)))

    @invariant()
    def what_a_hold_froze_is_still_there(self):
        frozen = set().union(*self.frozen.values()) if self.frozen else set()
        assert frozen <= {m.pk for m in self._live()}, "a record frozen by an active hold is gone"

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)


def test_retention_state_machine(db, monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)
    run_state_machine_as_test(
        RetentionMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )

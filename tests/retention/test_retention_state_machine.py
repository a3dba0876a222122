"""RELIABILITY C4 as a state machine: messages (some with portal copies) age, contacts are deleted,
tracking events, webhook logs and evidence exports accumulate, holds on contacts and on campaigns
come and go, time passes and disposal runs. After every run nothing an active hold covers was
destroyed or altered (messages deleted or shredded, contact records tombstoned), no expired record
that nothing protects is left, nothing went before its maximum, and the certificates of the run
count exactly the records gone from the database, per category, with the manifest of their ids
(every registered category: those a run may destroy are all created here; the others can never
be destroyed, which the test asserts).

The oracle is a model of the hold rule written here from the scenario (who received which
campaign), compared before each run with what `holds_for` answers (the Python rule); the run itself
applies `holds_sql` (the SQL rule). A campaign hold covers the campaign's messages and the contact
records of its recipients; a hold naming only contact records of a campaign keeps its messages too.

Size: CHAOS_RETENTION_EXAMPLES examples of up to CHAOS_RETENTION_STEPS steps. `make test` runs it
small; `make chaos` at the C4 size (10,000 examples). The report goes to artifacts/chaos/.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from contacts.models import Contact
from delivery.models import Message
from healthmail.tenants.context import tenant_context
from retention import disposal, holds
from retention.models import DisposalRun, LegalHold
from retention.policies import policies_ensure_defaults
from retention.registry import all_categories
from tests.factories import BaaFactory, TenantFactory

from .helpers import (
    new_contact,
    new_export,
    new_messages,
    new_portal_copy,
    new_tracking_event,
    new_webhook_delivery,
    officer,
    records_gone,
)

pytestmark = [pytest.mark.django_db, pytest.mark.chaos]
EXAMPLES = int(os.environ.get("CHAOS_RETENTION_EXAMPLES", "40"))
STEPS = int(os.environ.get("CHAOS_RETENTION_STEPS", "12"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "chaos"
DAY = datetime.timedelta(days=1)
MESSAGE_MAX = 7 * 365  # shipped default for message metadata (approval required)
CONTACT_MAX = 60  # shipped default for deleted contacts (automatic)
PEOPLE, CAMPAIGNS = 3, 2
HOLD_CATEGORIES = [None, "message_metadata", "contacts", "consent_records"]
# Records no hold of this machine covers (no contact, no campaign): their maximum alone decides.
UNHELD_MAX = {"tracking_events": 2 * 365, "webhook_logs": 365, "exports": 90}


@dataclass
class World:
    """What every example shares (created once, outside the examples' savepoints) and the tallies."""

    tenant: object
    actor: object
    approver: object  # a second compliance officer: disposal runs are approved by another person
    exported: object  # the contact evidence exports are made of
    people: list  # contacts; each example's changes to them roll back with it
    examples: int = 0
    steps: int = 0
    runs: int = 0
    held_checks: dict = field(default_factory=lambda: {"messages": 0, "contacts": 0})
    # Records a hold kept through a run that would otherwise have destroyed them.
    kept_by_holds: dict = field(default_factory=lambda: {"messages": 0, "contacts": 0, "by_campaign": 0})
    certified: dict = field(default_factory=dict)  # category -> records counted on certificates


@dataclass(frozen=True)
class ModelHold:
    by_campaign: bool
    target: int  # person index, or campaign index
    category: str | None


class RetentionMachine(RuleBasedStateMachine):
    world: World  # set by the test on a subclass

    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()  # each example rolls back to the shared world
        self.world.examples += 1
        self.tenant, self.actor = self.world.tenant, self.world.actor
        self.people = self.world.people
        # Ages are in days before the real now; a run judges them `offset` days later.
        self.messages: dict = {}  # live message id -> (age, person, campaign)
        self.deleted: dict = {}  # person -> days since deletion
        self.tombstoned: set = set()
        self.holds: dict = {}  # active hold id -> ModelHold
        self.offset = 0
        self.portal: dict = {}  # live portal copy id -> its message id
        self.unheld: dict = {key: {} for key in UNHELD_MAX}  # category -> {live id: age in days}

    # --- The hold rule, from the scenario ---------------------------------------------------------

    def _covers_message(self, hold: ModelHold, person: int, campaign: int) -> bool:
        keeps_messages = hold.category in (None, "message_metadata") or (
            hold.by_campaign and hold.category in ("contacts", "consent_records")
        )
        return keeps_messages and (campaign if hold.by_campaign else person) == hold.target

    def _covers_contact(self, hold: ModelHold, person: int) -> bool:
        if hold.category not in (None, "contacts"):
            return False
        if not hold.by_campaign:
            return person == hold.target
        return any(p == person and c == hold.target for _, p, c in self.messages.values())

    def _held_messages(self) -> set:
        return {
            pk
            for pk, (_, person, campaign) in self.messages.items()
            if any(self._covers_message(h, person, campaign) for h in self.holds.values())
        }

    def _held_people(self) -> set:
        """Deleted people whose contact record a hold covers (a tombstone is past keeping)."""
        return {
            p
            for p in self.deleted
            if p not in self.tombstoned and any(self._covers_contact(h, p) for h in self.holds.values())
        }

    # --- Rules ------------------------------------------------------------------------------------

    @initialize(
        received=st.lists(
            st.tuples(st.integers(0, 3000), st.integers(0, PEOPLE - 1), st.integers(0, CAMPAIGNS - 1)),
            min_size=2,
            max_size=5,
        ),
        deleted=st.lists(st.integers(0, 120) | st.none(), min_size=PEOPLE, max_size=PEOPLE),
        placed=st.lists(
            st.tuples(st.booleans(), st.integers(0, PEOPLE - 1), st.sampled_from(HOLD_CATEGORIES)),
            min_size=1,
            max_size=3,
        ),
    )
    def people_received_campaigns_some_were_deleted_and_holds_were_placed(self, received, deleted, placed):
        self.world.steps += 1
        for age, person, campaign in received:
            self._add(1, age, person, campaign)
        for person, days in enumerate(deleted):
            if days is not None:
                self._delete(person, days)
        for by_campaign, index, category in placed:
            self._place(by_campaign, index, category)

    @rule(
        count=st.integers(1, 3),
        age=st.integers(0, 3000),
        person=st.integers(0, PEOPLE - 1),
        campaign=st.integers(0, CAMPAIGNS - 1),
    )
    def add_messages(self, count, age, person, campaign):
        self.world.steps += 1
        self._add(count, age, person, campaign)

    def _add(self, count, age, person, campaign, portal=False):
        for message in new_messages(
            self.tenant, count, age=age * DAY, contact=self.people[person], source_id=f"s{campaign}"
        ):
            self.messages[message.pk] = (age, person, campaign)
            if portal:
                self.portal[new_portal_copy(self.tenant, message)] = message.pk

    @rule(age=st.integers(0, 3000), person=st.integers(0, PEOPLE - 1), campaign=st.integers(0, CAMPAIGNS - 1))
    def add_a_message_with_a_portal_copy(self, age, person, campaign):
        self.world.steps += 1
        self._add(1, age, person, campaign, portal=True)

    @rule(category=st.sampled_from(sorted(UNHELD_MAX)), age=st.integers(0, 1000))
    def add_a_tracking_event_webhook_log_or_export(self, category, age):
        self.world.steps += 1
        if category == "tracking_events":  # no message, no contact: fast-deleted by Django
            record = new_tracking_event(self.tenant, age=age * DAY)
        elif category == "webhook_logs":
            record = new_webhook_delivery(self.tenant, age=age * DAY)
        else:
            record = new_export(self.tenant, self.actor, age=age * DAY, contact=self.world.exported)
        self.unheld[category][record] = age

    @rule(person=st.integers(0, PEOPLE - 1), days=st.integers(0, 200))
    def delete_contact(self, person, days):
        self.world.steps += 1
        self._delete(person, days)

    def _delete(self, person, days):
        if person in self.deleted:
            return
        with tenant_context(self.tenant):
            Contact.objects.filter(pk=self.people[person].pk).update(deleted_at=timezone.now() - days * DAY)
        self.deleted[person] = days

    @rule(
        by_campaign=st.booleans(),
        index=st.integers(0, PEOPLE - 1),
        category=st.sampled_from(HOLD_CATEGORIES),
    )
    def place_hold(self, by_campaign, index, category):
        self.world.steps += 1
        self._place(by_campaign, index, category)

    def _place(self, by_campaign, index, category):
        model = ModelHold(by_campaign, index % CAMPAIGNS if by_campaign else index, category)
        scope = holds.HoldScope(
            contact_ids=() if by_campaign else (self.people[model.target].pk,),
            sources=(f"campaign:s{model.target}",) if by_campaign else (),
            categories=(category,) if category else (),
        )
        hold = holds.hold_create(
            tenant=self.tenant, actor=self.actor, matter="M", reason="R", counsel="C", scope=scope
        )
        self.holds[hold.pk] = model

    @precondition(lambda self: self.holds)
    @rule(which=st.integers(0, 3))
    def release_a_hold(self, which):
        self.world.steps += 1
        hold_id = sorted(self.holds, key=str)[which % len(self.holds)]
        with tenant_context(self.tenant):
            hold = LegalHold.objects.get(pk=hold_id)
        holds.hold_release_request(tenant=self.tenant, actor=self.actor, hold=hold, reason="settled")
        holds.hold_release(tenant=self.tenant, actor=self.world.approver, hold=hold)
        del self.holds[hold_id]

    @precondition(lambda self: self.messages or set(self.deleted) - self.tombstoned)
    @rule(days=st.integers(0, 1500))
    def time_passes_and_disposal_runs(self, days):
        self.world.steps += 1
        self.world.runs += 1
        self.offset += days
        held_messages, held_people = self._held_messages(), self._held_people()
        self._check_the_python_rule_agrees(held_messages, held_people)
        as_of = timezone.now() + self.offset * DAY
        tracked = self._tracked()
        before = {key: set(ids) - records_gone(self.tenant, key, ids) for key, ids in tracked.items()}
        runs = disposal.disposal_plan(tenant=self.tenant, actor=self.actor, as_of=as_of)
        for run in runs:
            if run.status == "awaiting_approval":
                disposal.disposal_approve(tenant=self.tenant, actor=self.world.approver, run=run)
            disposal.disposal_run_execute(tenant_id=self.tenant.pk, run_id=run.pk, batch_size=2)
        went = {key: ids & records_gone(self.tenant, key, ids) for key, ids in before.items()}
        self._check_the_certificates_count_what_went(runs, went)
        self._check_unheld_records(went)
        live, intact, tombstoned = self._database()
        assert held_messages <= live, "a held message was destroyed"
        assert held_messages <= intact, "a held message was altered (content shredded)"
        assert not held_people & tombstoned, "a held contact record was tombstoned"
        kept = self.world.kept_by_holds
        for pk, (age, _, _) in self.messages.items():
            age += self.offset
            if pk not in held_messages and age > MESSAGE_MAX + 1:
                assert pk not in live, "an expired, unprotected message was kept"
            if age < MESSAGE_MAX - 1:
                assert pk in live, "a message was destroyed before its maximum"
            kept["messages"] += pk in held_messages and age > MESSAGE_MAX + 1
        for person, days in self.deleted.items():
            days += self.offset
            if person not in held_people and days > CONTACT_MAX + 1:
                assert person in tombstoned, "an expired, unprotected contact record was kept"
            if days < CONTACT_MAX - 1:
                assert person not in tombstoned, "a contact record was tombstoned before its maximum"
            if person in held_people and days > CONTACT_MAX + 1:
                kept["contacts"] += 1
                kept["by_campaign"] += not any(
                    self._covers_contact(h, person) for h in self.holds.values() if not h.by_campaign
                )
        self.messages = {pk: spec for pk, spec in self.messages.items() if pk in live}
        self.tombstoned = tombstoned
        self.portal = {
            pk: message for pk, message in self.portal.items() if pk not in went["portal_messages"]
        }

    def _tracked(self) -> dict[str, list[str]]:
        """Every record this machine created, by category."""
        messages = [str(pk) for pk in self.messages]
        return {
            "message_metadata": messages,
            "message_content": messages,
            "portal_messages": list(self.portal),
            "contacts": [str(self.people[p].pk) for p in self.deleted],
            **{key: list(ids) for key, ids in self.unheld.items()},
        }

    def _check_the_certificates_count_what_went(self, runs, went: dict[str, set]) -> None:
        """Counts and manifests of the certificates = the rows gone from the database. A portal copy
        deleted with its message is counted with the message (removed along), not on its own."""
        along = {pk for pk, message in self.portal.items() if str(message) in went["message_metadata"]}
        expected = {**went, "portal_messages": went["portal_messages"] - along}
        certified: dict[str, int] = {}
        removed_along = 0
        with tenant_context(self.tenant):
            for run in DisposalRun.objects.filter(pk__in=[r.pk for r in runs]).select_related("certificate"):
                assert run.status == DisposalRun.Status.COMPLETED, run.halt_reason
                certificate = run.certificate
                lines = sorted(f"{key}\t{pk}\n" for key in run.categories for pk in expected.get(key, ()))
                assert certificate.record_count == len(lines), "certificate count differs from rows gone"
                digest = hashlib.sha256("".join(lines).encode()).hexdigest()
                assert certificate.manifest_sha256 == digest, "manifest differs from the rows gone"
                for row in certificate.document["categories"]:
                    certified[row["category"]] = row["count"]
                    removed_along += row["removed_along"].get("delivery.PortalMessage", 0)
        assert certified == {key: len(ids) for key, ids in expected.items() if ids}
        assert removed_along == len(along), "portal copies deleted with their message are not counted"
        for key, count in certified.items():
            self.world.certified[key] = self.world.certified.get(key, 0) + count

    def _check_unheld_records(self, went: dict[str, set]) -> None:
        for key, records in self.unheld.items():
            for pk, age in records.items():
                age += self.offset
                if age > UNHELD_MAX[key] + 1:
                    assert pk in went[key], f"an expired {key} record was kept"
                if age < UNHELD_MAX[key] - 1:
                    assert pk not in went[key], f"a {key} record was destroyed before its maximum"
            self.unheld[key] = {pk: age for pk, age in records.items() if pk not in went[key]}

    def _check_the_python_rule_agrees(self, held_messages: set, held_people: set) -> None:
        """`holds_for` (records' badges) says the same as the model; asked once for all records."""
        active = holds.active_holds(tenant=self.tenant)

        def held(model, ids) -> set:
            refs = holds.record_refs(model, [str(i) for i in ids], tenant=self.tenant)
            return {ref.record_id for ref in refs if any(holds.hold_covers(a, ref) for a in active)}

        people = {str(self.people[p].pk): p for p in self.deleted if p not in self.tombstoned}
        assert held(Message, self.messages) == {str(pk) for pk in held_messages}, "rule mismatch (message)"
        assert {people[i] for i in held(Contact, people)} == held_people, "rule mismatch (contact)"
        self.world.held_checks["messages"] += len(self.messages)
        self.world.held_checks["contacts"] += len(people)

    def _database(self) -> tuple[set, set, set]:
        """(messages still there, those with their content, people whose record is tombstoned)."""
        with tenant_context(self.tenant):
            rows = Message.objects.filter(pk__in=list(self.messages)).values_list("pk", "content_key_id")
            live = {pk for pk, _ in rows}
            intact = {pk for pk, key in rows if key is not None}
            ids = {self.people[p].pk: p for p in self.deleted}
            tombstoned = {
                ids[pk]
                for pk in Contact.objects.filter(pk__in=list(ids), email_index__isnull=True).values_list(
                    "pk", flat=True
                )
            }
        return live, intact, tombstoned

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)


def test_retention_state_machine(db, monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)
    tenant = TenantFactory()
    BaaFactory(tenant=tenant)
    policies_ensure_defaults(tenant=tenant)
    destroyable = {c.key for c in all_categories() if c.destroyable}
    assert destroyable == {
        "message_metadata",
        "message_content",
        "portal_messages",
        "contacts",
        *UNHELD_MAX,
    }, "a registered category a run may destroy is not created by this machine"
    world = World(
        tenant=tenant,
        actor=officer(tenant),
        approver=officer(tenant),
        exported=new_contact(tenant),
        people=[new_contact(tenant) for _ in range(PEOPLE)],
    )
    machine = type("Machine", (RetentionMachine,), {"world": world})
    started = time.monotonic()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
    report = {
        "examples": world.examples,
        "steps": world.steps,
        "disposal_runs": world.runs,
        "hold_rule_checks": world.held_checks,
        "kept_by_holds": world.kept_by_holds,
        "certified_destroyed": world.certified,
        "max_examples": EXAMPLES,
        "max_steps": STEPS,
        "seconds": round(time.monotonic() - started, 1),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"retention-{EXAMPLES}.json").write_text(json.dumps(report, indent=2) + "\n")
    print("retention state machine:", json.dumps(report))

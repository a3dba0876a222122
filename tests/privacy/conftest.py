"""Synthetic tenants with planted unique people, and the scripted attackers of the attack suite.

A world: 300 background contacts (tests/segmentation/conftest.make_contacts) and PLANTED people,
each carrying a tag no one else has ("planted-<i>": the attacker's knowledge of who they are) and a
hidden bit: diabetes (E11.9) or hypertension (I10). Half the bits are 1, so a constant guess scores
exactly one half; the suite fails when an attacker scores above CHANCE + MARGIN.

Attackers spend at most a fixed number of queries per planted person; a refused or masked answer
is a spent query that told nothing (they then guess with a seeded coin).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.urls import reverse

from contacts import services as contacts
from contacts.normalize import ContactInput
from healthmail.actors import Actor
from tests.segmentation.conftest import make_contacts

PLANTED = 60
CHANCE = 0.5
# Binomial(60, 1/2) has a standard deviation of 0.065: 0.2 is three of them, so a defended run
# fails by bad luck about once in a thousand, and an attack that works (>= 0.95) always shows.
MARGIN = 0.2
QUERIES_PER_PERSON = 6
DIABETES = {"field": "condition", "op": "in", "value": ["E11.9"]}
SEED = 16


def tag(index: int) -> dict:
    return {"field": "tag", "op": "in", "value": [f"planted-{index}"]}


def email(index: int) -> str:
    return f"planted-{index}@example.org"


def hidden_bits() -> list[int]:
    bits = [1] * (PLANTED // 2) + [0] * (PLANTED - PLANTED // 2)
    random.Random(SEED).shuffle(bits)
    return bits


def planted_input(index: int, bit: int) -> ContactInput:
    return ContactInput(
        email=email(index),
        first_name="Planted",
        last_name=f"Person{index}",
        birth_date="1979-05-04",
        postal_address={"line1": "1 Main St", "city": "Cheyenne", "state": "WY", "zip": "82001"},
        clinical={"conditions": ["E11.9" if bit else "I10"]},
        tags=[f"planted-{index}"],
    )


def plant(tenant, indexes: list[int], bits: list[int]) -> None:
    results = contacts.contact_upsert_many(
        tenant=tenant,
        actor=Actor.system("tests"),
        inputs=[planted_input(i, bits[i]) for i in indexes],
        source="tests",
    )
    assert all(r.status == contacts.UpsertStatus.CREATED for r in results), results


@dataclass
class World:
    tenant: object
    bits: list[int]


@pytest.fixture
def world(tenant_a) -> World:
    make_contacts(tenant_a, 300, seed=SEED)
    bits = hidden_bits()
    plant(tenant_a, list(range(PLANTED)), bits)
    return World(tenant_a, bits)


@pytest.fixture
def background(tenant_a) -> World:
    """The background only: time-shift attacks plant people one at a time."""
    make_contacts(tenant_a, 300, seed=SEED)
    return World(tenant_a, hidden_bits())


@dataclass
class Attacker:
    """Counts a definition the way one kind of attacker can; None when masked or refused."""

    ask: Callable[[dict], int | None]
    budget: int
    spent: int = 0
    coin: random.Random = field(default_factory=lambda: random.Random(SEED + 1))

    def count(self, definition: dict) -> int | None:
        assert self.spent < self.budget, "the attack spends more than its query budget"
        self.spent += 1
        return self.ask(definition)

    def guess(self, value: int | None) -> int:
        return value if value in (0, 1) else self.coin.randint(0, 1)


def success_rate(world: World, attack: Callable[[Attacker, int], int | None], make: Callable) -> float:
    """Run `attack` against every planted person with a fresh query budget; the share guessed right."""
    attacker = make(budget=QUERIES_PER_PERSON * PLANTED)
    right = 0
    for index, bit in enumerate(world.bits):
        right += attacker.guess(attack(attacker, index)) == bit
    return right / len(world.bits)


_NUMBER = re.compile(r'data-testid="segment-count">(?:about )?([0-9,]+)<')


@pytest.fixture
def marketer(member_client):
    """The marketer through the builder's live count (the web path, as a person would)."""

    def make(*, budget: int) -> Attacker:
        client = member_client("marketer")

        def ask(definition: dict) -> int | None:
            response = client.post(
                reverse("segmentation:segment_count"), {"definition": json.dumps(definition)}
            )
            body = response.content.decode()
            if "No contact matches" in body:
                return 0
            found = _NUMBER.search(body)
            return int(found.group(1).replace(",", "")) if found else None

        return Attacker(ask, budget)

    return make


@pytest.fixture
def key_attacker(api, issue_key):
    """An API key without the PHI scope (segments and contact writes)."""

    def make(*, budget: int) -> Attacker:
        client = api(issue_key(scopes=["segments:read", "segments:write", "contacts:write"]))

        def ask(definition: dict) -> int | None:
            response = client.post("/api/v1/segments/count", {"definition": definition})
            return response.json()["count"] if response.status_code == 200 else None

        attacker = Attacker(ask, budget)
        attacker.client = client  # type: ignore[attr-defined]
        return attacker

    return make

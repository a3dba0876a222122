"""Differencing across breakdown cells: a cell of one count and a cell of another that differ by one
person. Each cell is the query "definition AND this value", so the query audit compares it with
the viewer's recent queries and cells, like a count of its own.

The noise is turned down here (scale 0.01, rounding base 1), so the query audit alone stands
between the attacker and the answer: with the cells' audit switched off the attack succeeds.
"""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from contacts import services as contacts
from contacts.normalize import ContactInput
from healthmail.actors import Actor
from segmentation import services as segmentation

from .conftest import CHANCE, DIABETES, MARGIN, PLANTED, tag

pytestmark = pytest.mark.django_db
PAD = 12  # more than k: a padded count is far enough from every other one to be answered


def pad(index: int) -> dict:
    return {"field": "tag", "op": "in", "value": [f"pad-{index}"]}


@pytest.fixture
def padded(world):
    """Per planted person, PAD people in CA with no condition, tagged pad-<i>."""
    inputs = [
        ContactInput(
            email=f"pad-{index}-{n}@example.org",
            postal_address={"line1": "2 Main St", "city": "Fresno", "state": "CA", "zip": "93650"},
            tags=[f"pad-{index}"],
        )
        for index in range(PLANTED)
        for n in range(PAD)
    ]
    for start in range(0, len(inputs), contacts.MAX_BATCH):
        contacts.contact_upsert_many(
            tenant=world.tenant,
            actor=Actor.system("tests"),
            inputs=inputs[start : start + contacts.MAX_BATCH],
            source="tests",
        )
    return world


def _wyoming(client, definition: dict) -> int | None:
    """The WY cell of the count's breakdown by state, or None (masked, not shown, refused)."""
    response = client.post(reverse("segmentation:segment_count"), {"definition": json.dumps(definition)})
    found = re.search(r"<td>WY</td><td>(?:about )?([0-9,]+)</td>", response.content.decode())
    return int(found.group(1).replace(",", "")) if found else None


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "cell-audit-off"])
def test_marketer_learns_no_diagnosis_from_breakdown_cells(
    padded, member_client, defended, settings, monkeypatch
):
    settings.DISCLOSURE_NOISE_SCALE = 0.01
    settings.DISCLOSURE_ROUNDING_BASE = 1
    settings.DISCLOSURE_BUDGET = 1000  # the budget is not what this test is about
    if not defended:
        monkeypatch.setattr(segmentation._QueryAudit, "try_answer", lambda self, *args, **kwargs: True)
    client = member_client("marketer")
    everyone = _wyoming(client, DIABETES)  # the diabetics in WY
    assert everyone is not None
    right = 0
    for index, bit in enumerate(padded.bits):
        # Diabetics but this person, padded with PAD people in CA: a total far from every other
        # count, whose WY cell is "diabetics in WY but this person".
        without = _wyoming(client, {"any": [{"all": [DIABETES, {"not": tag(index)}]}, pad(index)]})
        guess = None if without is None else int(everyone - without >= 0.5)
        right += (guess if guess is not None else index % 2) == bit
    rate = right / PLANTED
    if defended:
        assert rate <= CHANCE + MARGIN, f"the attacker named {rate:.0%} of planted diagnoses"
    else:
        assert rate >= 0.95, f"with the cells' audit off the attack should work, got {rate:.0%}"

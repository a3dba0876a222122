"""RELIABILITY P1: scripted attackers try to learn planted people's diagnoses from counts.

Every attack runs twice: with the disclosure policy (it must score no better than chance, within the
margin) and with the policy switched off (it must then succeed: proof the attack, and so the suite,
can fail). The marketer attacks through the segment builder's live count (web path); the API key
(no contacts:phi) through /api/v1.
"""

from __future__ import annotations

import random
import re
import statistics
import uuid

import pytest

from contacts import api as contacts_api
from healthmail import disclosure
from healthmail.disclosure import Viewer

from .conftest import CHANCE, DIABETES, MARGIN, PLANTED, email, plant, success_rate, tag

pytestmark = pytest.mark.django_db
FEMALE = {"field": "gender", "op": "eq", "value": "female"}
TOTAL = re.compile(r"waiting or sending, of (?:about )?([0-9,]+)\.")
DEFENCE = pytest.mark.parametrize("defended", [True, False], ids=["defended", "defence-off"])


def _switch(defended: bool, settings, monkeypatch) -> None:
    settings.DISCLOSURE_ENABLED = defended
    if not defended:
        # With the policy off, a key without the PHI scope is also let through to clinical criteria.
        monkeypatch.setattr(
            Viewer,
            "for_api_key",
            classmethod(lambda cls, key: cls(key=f"api_key:{key.prefix}", phi=False, clinical_criteria=True)),
        )


def _judge(rate: float, defended: bool) -> None:
    if defended:
        assert rate <= CHANCE + MARGIN, f"the attacker named {rate:.0%} of planted diagnoses"
    else:
        assert rate >= 0.95, f"with the defence off the attack should work, got {rate:.0%}"


def _bit(difference: float) -> int:
    return 1 if difference >= 0.5 else 0


# --- Attacks: each takes an attacker and a planted person, and guesses the hidden bit (or None) ----


def differencing(attacker, index):
    """Two counts that differ by one extra condition ("and not this person")."""
    everyone = attacker.count(DIABETES)
    without = attacker.count({"all": [DIABETES, {"not": tag(index)}]})
    return None if everyone is None or without is None else _bit(everyone - without)


def tag_and_compare(attacker, index, person=tag):
    """Count a clinical segment with and without the person's tag OR-ed in."""
    plain = attacker.count(DIABETES)
    tagged = attacker.count({"any": [DIABETES, person(index)]})
    return None if plain is None or tagged is None else 1 - _bit(tagged - plain)


def complement(attacker, index):
    """Everyone (exact: no PHI) minus everyone but the person-with-diabetes."""
    everyone = attacker.count({"all": []})
    rest = attacker.count({"not": {"all": [DIABETES, tag(index)]}})
    return None if everyone is None or rest is None else _bit(everyone - rest)


def overlapping(attacker, index):
    """Inclusion-exclusion over overlapping segments: |D and (G or T)| - |D and G| = |D and T|."""
    diabetes = attacker.count(DIABETES)
    group_or_person = attacker.count({"any": [FEMALE, tag(index)]})
    union = attacker.count({"any": [DIABETES, FEMALE, tag(index)]})
    diabetes_in_group = attacker.count({"all": [DIABETES, FEMALE]})
    if None in (diabetes, group_or_person, union, diabetes_in_group):
        return None
    return _bit(diabetes + group_or_person - union - diabetes_in_group)


def repeated(attacker, index):
    """The differencing pair asked three times each, averaged (noise that changed would cancel)."""
    everyone = [attacker.count(DIABETES) for _ in range(3)]
    without = [attacker.count({"all": [DIABETES, {"not": tag(index)}]}) for _ in range(3)]
    if None in everyone or None in without:
        return None
    return _bit(statistics.mean(everyone) - statistics.mean(without))


MARKETER_ATTACKS = [differencing, tag_and_compare, complement, overlapping, repeated]


@DEFENCE
@pytest.mark.parametrize("attack", MARKETER_ATTACKS, ids=lambda a: a.__name__)
def test_marketer_learns_no_diagnosis(world, marketer, attack, defended, settings, monkeypatch):
    _switch(defended, settings, monkeypatch)
    _judge(success_rate(world, attack, marketer), defended)


@DEFENCE
@pytest.mark.parametrize("attack", [differencing, complement, repeated], ids=lambda a: a.__name__)
def test_api_key_without_phi_scope_learns_no_diagnosis(
    world, key_attacker, attack, defended, settings, monkeypatch
):
    _switch(defended, settings, monkeypatch)
    _judge(success_rate(world, attack, key_attacker), defended)


@DEFENCE
def test_api_key_tags_a_patient_and_compares(world, key_attacker, defended, settings, monkeypatch):
    """The reported attack: a key writes a tag on one patient, then compares two segment counts."""
    _switch(defended, settings, monkeypatch)

    def attack(attacker, index):
        written = attacker.client.post(
            "/api/v1/contacts",
            {"email": email(index), "tags": [f"probe-{index}"]},
            HTTP_IDEMPOTENCY_KEY=f"tag-{index}",
        )
        assert written.status_code == 200, written.content
        probe = {"field": "tag", "op": "in", "value": [f"probe-{index}"]}
        return tag_and_compare(attacker, index, person=lambda _: probe)

    _judge(success_rate(world, attack, key_attacker), defended)


@DEFENCE
def test_count_before_and_after_one_import(background, marketer, defended, settings, monkeypatch):
    """Time shift: the same count just before and just after one planted person is imported."""
    _switch(defended, settings, monkeypatch)
    attacker = marketer(budget=2 * PLANTED)
    right = 0
    for index, bit in enumerate(background.bits):
        before = attacker.count(DIABETES)
        plant(background.tenant, [index], background.bits)
        after = attacker.count(DIABETES)
        guess = None if before is None or after is None else _bit(after - before)
        right += attacker.guess(guess) == bit
    _judge(right / PLANTED, defended)


@DEFENCE
def test_write_answers_confirm_no_guessed_diagnosis(world, key_attacker, defended, settings, monkeypatch):
    """Write oracle: upsert the guessed diagnosis and read "unchanged" as a yes."""
    _switch(defended, settings, monkeypatch)
    if not defended:
        monkeypatch.setattr(contacts_api, "_reads_phi", lambda request: True)

    def attack(attacker, index):
        written = attacker.client.post(
            "/api/v1/contacts",
            {"email": email(index), "clinical": {"conditions": ["E11.9"]}},
            HTTP_IDEMPOTENCY_KEY=f"write-{index}",
        )
        assert written.status_code == 200, written.content
        return 1 if written.json()["status"] == "unchanged" else 0

    _judge(success_rate(world, attack, key_attacker), defended)


def test_the_policy_switch_is_only_a_test_setting(settings):
    """DISCLOSURE_ENABLED is not read from the environment: production cannot turn the policy off."""
    from healthmail.settings import base

    assert not hasattr(base, "DISCLOSURE_ENABLED")
    assert disclosure.enabled() is True


@DEFENCE
def test_report_pages_show_no_planted_person(world, member_client, defended, settings, monkeypatch):
    """Report-page reading: one sending per planted person whose audience holds the person only if
    the hidden bit is set (as a campaign to "diabetes and this tag" would); read its progress page."""
    from django.urls import reverse

    from tests.delivery.engine_support import enqueue, verified_sender_domain

    _switch(defended, settings, monkeypatch)
    sender = verified_sender_domain(world.tenant)[0]
    client = member_client("marketer")
    coin = random.Random(7)
    right = 0
    for index, bit in enumerate(world.bits):
        source_id = str(uuid.uuid4())
        addresses = [f"r{n}-{index}@good.test" for n in range(11)] + ([email(index)] if bit else [])
        enqueue(
            world.tenant,
            addresses,
            sender_domain=sender,
            stream="marketing",
            source_id=source_id,
            contacts=False,
        )
        page = client.get(reverse("sending:source_progress", args=["campaign", source_id]))
        found = TOTAL.search(page.content.decode())
        seen = int(found.group(1).replace(",", "")) - 11 if found else None
        right += (seen if seen in (0, 1) else coin.randint(0, 1)) == bit
    _judge(right / PLANTED, defended)

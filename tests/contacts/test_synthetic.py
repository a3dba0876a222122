"""The synthetic patient generator: deterministic, obviously fake, valid, and realistically mixed."""

from __future__ import annotations

import re
from collections import Counter

from contacts import reference
from contacts.synthetic import synthetic_contact, synthetic_contacts


def test_same_seed_same_patients_and_other_seed_differs():
    assert list(synthetic_contacts(count=20, seed=5)) == list(synthetic_contacts(count=20, seed=5))
    assert synthetic_contact(1, seed=5) != synthetic_contact(1, seed=6)


def test_patients_are_obviously_fake_and_valid():
    for patient in synthetic_contacts(count=300, seed=1):
        assert patient.validate() == []
        assert re.fullmatch(r"synthetic\.patient\.1\.\d{4}@(example\.org|patients\.test)", patient.email)
        assert patient.first_name == "Synthetic"
        assert patient.last_name.startswith("Patient ")


def test_mix_includes_minors_ninety_plus_sensitive_conditions_and_languages():
    patients = list(synthetic_contacts(count=500, seed=2))
    ages = [2025 - p.birth_date.year for p in patients]
    assert any(age < 18 for age in ages)
    assert any(age >= 90 for age in ages)
    categories = {
        reference.category_of_condition(code) for p in patients for code in p.clinical["conditions"]
    }
    assert {"behavioral_health", "substance_use", "hiv", "reproductive", "genetic"} <= categories
    languages = Counter(p.demographics["preferred_language"] for p in patients)
    assert languages["en"] > languages["es"] > 0
    assert len({p.postal_address["state"] for p in patients}) >= 8
    assert len({p.journey_stage for p in patients}) >= 5

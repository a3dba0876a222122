"""Synthetic patients: deterministic, obviously fake, realistically mixed. For the demo tenant,
tests and benchmarks — never real people.

    for data in synthetic_contacts(count=200, seed=7): ...

The same (seed, index) always gives the same patient, so a re-run upserts instead of duplicating
(external id `synthetic:<seed>-<index>`). Names read "Synthetic Patient 0001"; emails use the
reserved example.org / .test domains (RFC 2606), which can never reach a real mailbox.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator

from .models import JourneyStage
from .normalize import ContactInput

# Weighted by rough population share so segment counts look plausible; includes a restricted ZIP3
# (036, New Hampshire/Vermont border) and a territory (PR).
_PLACES = (
    ("CA", "900", 12),
    ("TX", "750", 9),
    ("FL", "331", 7),
    ("NY", "100", 6),
    ("WA", "981", 3),
    ("NV", "891", 2),
    ("CT", "061", 2),
    ("MA", "021", 2),
    ("IL", "606", 4),
    ("NH", "036", 1),
    ("WY", "820", 1),
    ("PR", "009", 1),
)
_CONDITIONS = (
    ("E11.9", 10),  # type 2 diabetes
    ("I10", 12),  # hypertension
    ("J45.909", 5),  # asthma
    ("E78.5", 8),  # hyperlipidemia
    ("M54.5", 4),  # low back pain
    ("F32.9", 4),  # depression (behavioral health)
    ("F41.1", 3),  # anxiety (behavioral health)
    ("F11.20", 1),  # opioid use disorder (42 CFR Part 2)
    ("B20", 1),  # HIV
    ("Z34.00", 2),  # pregnancy supervision (reproductive)
    ("Z15.01", 1),  # genetic susceptibility (genetic)
    ("C50.911", 1),  # breast cancer
)
_MEDICATIONS = ("METFORMIN", "LISINOPRIL", "ATORVASTATIN", "ALBUTEROL", "SERTRALINE", "BUPRENORPHINE")
_VACCINES = ("INFLUENZA-2024", "COVID19-2024", "TDAP", "HPV", "SHINGRIX")
_PROCEDURES = ("45378", "77067", "93000", "99395")  # CPT: colonoscopy, mammogram, ECG, preventive visit
_LANGUAGES = (("en", 70), ("es", 20), ("zh", 3), ("vi", 3), ("ko", 2), ("ar", 2))
_GENDERS = (("female", 50), ("male", 48), ("nonbinary", 2))
_INSURANCE = ("commercial", "medicare", "medicaid", "self_pay", "tricare")
_PROVIDERS = ("Dr. Synthetic Alpha", "Dr. Synthetic Beta", "Dr. Synthetic Gamma")
_TAGS = ("newsletter", "diabetes-program", "flu-campaign", "vip", "telehealth")
_STAGES = tuple(JourneyStage.values)


def _weighted(rng: random.Random, choices):
    return rng.choices(
        [item[:-1] if len(item) > 2 else item[0] for item in choices], [c[-1] for c in choices]
    )[0]


def synthetic_contact(index: int, *, seed: int = 0, today: datetime.date | None = None) -> ContactInput:
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - fake data, not security
    today = today or datetime.date(2025, 1, 1)
    number = f"{index:04d}"
    # Ages: about 8% minors and 3% 90 or older, the rest spread over adulthood.
    roll = rng.random()
    age = rng.randint(0, 17) if roll < 0.08 else rng.randint(90, 101) if roll < 0.11 else rng.randint(18, 89)
    born = today - datetime.timedelta(days=age * 365 + rng.randint(1, 360))
    state, zip3 = _weighted(rng, _PLACES)
    conditions = sorted({_weighted(rng, _CONDITIONS) for _ in range(rng.randint(0, 3))})
    medications = sorted(set(rng.sample(_MEDICATIONS, rng.randint(0, 2))))
    domain = "example.org" if index % 2 else "patients.test"
    return ContactInput(
        email=f"synthetic.patient.{seed}.{number}@{domain}",
        first_name="Synthetic",
        last_name=f"Patient {number}",
        phone=f"+1 555 01{index % 100:02d} {rng.randint(1000, 9999)}",
        postal_address={
            "line1": f"{index} Synthetic Way",
            "city": "Testville",
            "state": state,
            "zip": f"{zip3}{rng.randint(0, 99):02d}",
        },
        birth_date=born,
        external_ids={"synthetic": f"{seed}-{number}"},
        demographics={
            "gender": _weighted(rng, _GENDERS),
            "preferred_language": _weighted(rng, _LANGUAGES),
            "insurance_type": rng.choice(_INSURANCE),
            "marital_status": rng.choice(("single", "married", "divorced", "widowed")),
        },
        clinical={
            "conditions": conditions,
            "medications": medications,
            "vaccinations": sorted(set(rng.sample(_VACCINES, rng.randint(0, 3)))),
            "procedures": sorted(set(rng.sample(_PROCEDURES, rng.randint(0, 2)))),
            "provider": rng.choice(_PROVIDERS),
            "last_visit": (today - datetime.timedelta(days=rng.randint(1, 900))).isoformat(),
        },
        journey_stage=rng.choice(_STAGES),
        tags=sorted(set(rng.sample(_TAGS, rng.randint(0, 2)))),
    )


def synthetic_contacts(*, count: int, seed: int = 0, start: int = 0) -> Iterator[ContactInput]:
    for index in range(start, start + count):
        yield synthetic_contact(index + 1, seed=seed)

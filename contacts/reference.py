"""Reference data the contact derivations rely on: US state codes, the HIPAA restricted ZIP3s and
the clinical-code → sensitive-category map. Data, not logic, each table citing where it comes from.
"""

from __future__ import annotations

from .models import SensitiveCategory

# USPS two-letter codes: the 50 states, DC, and the territories whose residents are US patients.
# Source: USPS Publication 28, Appendix B (State and Possession Abbreviations).
US_STATES: frozenset[str] = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
    "NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI".split()
)

# ZIP3 areas with 20,000 people or fewer (2000 Census): under the Safe Harbor method their first
# three digits must be replaced by "000". Source: HHS OCR, "Guidance Regarding Methods for
# De-identification of PHI" (2012), section 3.4, 45 CFR 164.514(b)(2)(i)(B).
RESTRICTED_ZIP3: frozenset[str] = frozenset(
    "036 059 063 102 203 556 692 790 821 823 830 831 878 879 884 890 893".split()
)

# Ages over 89 are folded into one "90 or older" group (45 CFR 164.514(b)(2)(i)(C)).
AGE_FOLDED_AT = 90
ADULT_AGE = 18

# ICD-10-CM code prefixes → sensitive category, first match wins (so the more specific prefixes
# come first). Ranges follow the ICD-10-CM tabular list (CDC/NCHS, FY2024):
# - F10-F19 "Mental and behavioral disorders due to psychoactive substance use" and Z71.41/Z71.51
#   (alcohol/drug abuse counseling): substance use disorder records under 42 CFR Part 2 (§ 2.11).
# - the rest of chapter 5 (F01-F09, F20-F99): behavioral health.
# - B20 (HIV disease), Z21 (asymptomatic HIV), R75 (inconclusive HIV test), Z71.7 (HIV counseling),
#   A50-A64 (infections with a predominantly sexual mode of transmission): HIV/STI.
# - chapter 15 O00-O9A (pregnancy, childbirth), Z30-Z39 (contraception, procreative management,
#   pregnancy supervision), Z3A (weeks of gestation), N97 (female infertility): reproductive health.
# - Z14 (genetic carrier), Z15 (genetic susceptibility), Z84.81 (family history of carrier of a genetic
#   disease): genetic information (GINA, 45 CFR 164.502(a)(5)(i)).
_SUBSTANCE = SensitiveCategory.SUBSTANCE_USE
_BEHAVIORAL = SensitiveCategory.BEHAVIORAL_HEALTH
_HIV = SensitiveCategory.HIV
_REPRODUCTIVE = SensitiveCategory.REPRODUCTIVE
_GENETIC = SensitiveCategory.GENETIC

ICD10_PREFIX_CATEGORIES: tuple[tuple[str, str], ...] = (
    *((f"F{n}", _SUBSTANCE) for n in range(10, 20)),
    ("Z7141", _SUBSTANCE),
    ("Z7151", _SUBSTANCE),
    ("F", _BEHAVIORAL),
    ("B20", _HIV),
    ("Z21", _HIV),
    ("R75", _HIV),
    ("Z717", _HIV),
    *((f"A{n}", _HIV) for n in range(50, 65)),
    ("O", _REPRODUCTIVE),
    *((f"Z3{n}", _REPRODUCTIVE) for n in range(10)),
    ("Z3A", _REPRODUCTIVE),
    ("N97", _REPRODUCTIVE),
    ("Z14", _GENETIC),
    ("Z15", _GENETIC),
    ("Z8481", _GENETIC),
)

# Medications that by themselves disclose a sensitive condition (normalized generic names).
# Buprenorphine, methadone and naltrexone are the FDA-approved medications for opioid use disorder
# (SAMHSA, "Medications for Opioid Use Disorder", TIP 63); the others are HIV antiretrovirals/PrEP.
MEDICATION_CATEGORIES: dict[str, str] = {
    "BUPRENORPHINE": _SUBSTANCE,
    "METHADONE": _SUBSTANCE,
    "NALTREXONE": _SUBSTANCE,
    "DISULFIRAM": _SUBSTANCE,
    "ACAMPROSATE": _SUBSTANCE,
    "EMTRICITABINE/TENOFOVIR": _HIV,
    "BICTEGRAVIR": _HIV,
    "DOLUTEGRAVIR": _HIV,
}


def category_of_condition(code: str) -> str | None:
    compact = code.upper().replace(".", "").replace(" ", "")
    for prefix, category in ICD10_PREFIX_CATEGORIES:
        if compact.startswith(prefix):
            return category
    return None


def category_of_medication(name: str) -> str | None:
    return MEDICATION_CATEGORIES.get(name.upper().replace(" ", ""))

"""Masking: how PHI looks to someone allowed to know a record exists but not to read it.

`mask(value, kind)` never returns more than a hint: J*** D***, j***@example.org, ***-***-0199,
an age band instead of a birth date, and nothing at all of clinical values.
"""

from __future__ import annotations

import datetime
import re

from django.utils import timezone

from .fields import PhiClass

HIDDEN = "•••"
AGE_BANDS = ((0, 17, "under 18"), (18, 29, "18-29"), (30, 44, "30-44"), (45, 64, "45-64"), (65, 89, "65-89"))


def _name(value: str) -> str:
    return " ".join(f"{part[0]}***" for part in value.split() if part) or HIDDEN


def _email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}" if local and domain else HIDDEN


def _phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return f"***-***-{digits[-4:]}" if len(digits) >= 7 else HIDDEN


def age_band(born: datetime.date, *, today: datetime.date | None = None) -> str:
    today = today or timezone.localdate()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    for low, high, label in AGE_BANDS:
        if low <= age <= high:
            return label
    return "90 or older" if age >= 90 else HIDDEN


def mask(value: object, kind: str = "", phi_class: str = PhiClass.IDENTIFIER) -> str:
    """`kind` says what the value is (name, email, phone, birth_date, ...); clinical and content
    values are hidden whatever their kind."""
    if value in (None, ""):
        return ""
    if phi_class in (PhiClass.CLINICAL, PhiClass.CONTENT):
        return HIDDEN
    if kind == "email":
        return _email(str(value))
    if kind == "name":
        return _name(str(value))
    if kind == "phone":
        return _phone(str(value))
    if kind == "birth_date":
        born = value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value))
        return age_band(born)
    return HIDDEN

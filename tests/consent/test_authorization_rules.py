"""The authorization validator against 45 CFR 164.508, paragraph by paragraph.

The property test compares consent.authorization_rules with a second reading of the regulation
written here, independently, as a checklist of questions per paragraph."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.authorization_rules import DEFECTS, SignedForm, authorization_defects

TODAY = datetime.date(2026, 6, 15)

COMPLETE = SignedForm(
    kind="marketing",
    phi_description="Your name, email address and the clinic services you used in the last two years.",
    disclosers="Synthetic Clinic and its marketing staff.",
    recipients="Synthetic Clinic's email service, under a business associate agreement.",
    purpose="To send you news about services that may interest you.",
    expiration="On December 31, 2026.",
    revocation_rights="You may revoke this in writing at any time by writing to our privacy office.",
    conditioning_statement="Your treatment, payment, enrollment or eligibility do not depend on signing.",
    redisclosure_statement="Information shared may be shared again by the recipient and lose protection.",
    expires_on=datetime.date(2026, 12, 31),
    signer_name="Pat Example",
    signed_on=datetime.date(2026, 5, 10),
)


def codes(form: SignedForm, today: datetime.date = TODAY) -> list[str]:
    return [defect.code for defect in authorization_defects(form=form, today=today)]


def test_a_complete_form_has_no_defect():
    assert codes(COMPLETE) == []


# One mutation per defect: the form is refused with exactly that code.
ONE_DEFECT = {
    "missing_phi_description": {"phi_description": ""},
    "missing_disclosers": {"disclosers": "  "},
    "missing_recipients": {"recipients": ""},
    "missing_purpose": {"purpose": "\n"},
    "purpose_at_request_not_individual": {"purpose": "At the request of the individual."},
    "missing_expiration": {"expiration": "", "expires_on": None},
    "expiration_none_not_research": {"expiration": "None", "expires_on": None},
    "expiration_contradictory": {"kind": "research", "expiration": "none"},
    "expiration_before_signature": {
        "expires_on": datetime.date(2026, 5, 1),
        "signed_on": datetime.date(2026, 5, 2),
    },
    "missing_signature": {"signer_name": ""},
    "missing_signature_date": {"signed_on": None},
    "signature_date_in_future": {"signed_on": datetime.date(2026, 6, 17)},
    "missing_representative_authority": {"by_representative": True, "representative_authority": " "},
    "missing_revocation_statement": {"revocation_rights": ""},
    "missing_conditioning_statement": {"conditioning_statement": ""},
    "missing_redisclosure_statement": {"redisclosure_statement": ""},
    "not_plain_language": {"purpose": "Pursuant to the aforementioned notice, the clinic hereby markets."},
    "missing_remuneration_statement": {"remuneration_involved": True},
    "expired": {"expires_on": datetime.date(2026, 6, 14)},
    "revoked": {"revoked_on": datetime.date(2026, 6, 1)},
    "compound_authorization": {"combined_with": frozenset({"treatment_consent"})},
    "conditioning_prohibited": {"conditioned_on": frozenset({"treatment"})},
    "known_false": {"known_false": True},
}


def test_every_defect_code_has_a_test():
    assert set(ONE_DEFECT) == set(DEFECTS)


@pytest.mark.parametrize("code", list(ONE_DEFECT))
def test_each_defect_refuses_the_form_with_its_code_and_paragraph(code):
    form = dataclasses.replace(COMPLETE, **ONE_DEFECT[code])
    defects = authorization_defects(form=form, today=TODAY)
    # An expiration before a past signature has necessarily passed, too.
    also = ["expired"] if code == "expiration_before_signature" else []
    assert [d.code for d in defects] == [code, *also]
    paragraph, message = DEFECTS[code]
    assert defects[0].paragraph == f"45 CFR 164.508{paragraph}"
    assert defects[0].message == message


def test_three_defects_are_reported_together():
    form = dataclasses.replace(
        COMPLETE, recipients="", redisclosure_statement="", combined_with=frozenset({"privacy_notice"})
    )
    assert codes(form) == ["missing_recipients", "missing_redisclosure_statement", "compound_authorization"]


def test_a_calendar_expiration_ends_the_day_after_it():
    form = dataclasses.replace(
        COMPLETE, expires_on=datetime.date(2025, 5, 31), signed_on=datetime.date(2025, 1, 2)
    )
    assert codes(form, today=datetime.date(2025, 5, 31)) == []
    assert codes(form, today=datetime.date(2025, 6, 1)) == ["expired"]
    assert codes(form, today=datetime.date(2027, 1, 1)) == ["expired"]


def test_an_expiration_event_ends_it_once_recorded():
    form = dataclasses.replace(
        COMPLETE,
        expiration="When you leave our health plan.",
        expires_on=None,
        expiry_event="Leaving the plan",
    )
    assert codes(form) == []
    ended = dataclasses.replace(form, expiry_event_occurred_on=datetime.date(2026, 6, 15))
    assert codes(ended) == ["expired"]
    assert codes(ended, today=datetime.date(2026, 6, 14)) == []


def test_none_is_an_expiration_for_research_only():
    research = dataclasses.replace(
        COMPLETE, kind="research", expiration="End of the research study", expires_on=None
    )
    assert codes(research) == []
    assert codes(dataclasses.replace(research, kind="marketing")) == ["expiration_none_not_research"]


def test_at_the_request_of_the_individual_suffices_when_they_initiated_it():
    form = dataclasses.replace(
        COMPLETE, purpose="at the request of the individual", initiated_by="individual"
    )
    assert codes(form) == []


def test_research_may_be_combined_with_consent_to_the_study_and_condition_research_treatment():
    research = dataclasses.replace(
        COMPLETE,
        kind="research",
        combined_with=frozenset({"research_consent", "authorization"}),
        conditioned_on=frozenset({"treatment"}),
    )
    assert codes(research) == []
    assert codes(dataclasses.replace(research, conditioned_on=frozenset({"payment"}))) == [
        "conditioning_prohibited"
    ]


def test_authorizations_may_share_a_form_unless_one_was_a_condition():
    combined = dataclasses.replace(COMPLETE, combined_with=frozenset({"authorization"}))
    assert codes(combined) == []
    conditioned = dataclasses.replace(combined, conditioned_on=frozenset({"enrollment"}))
    assert codes(conditioned) == ["compound_authorization", "conditioning_prohibited"]


# --- The independent reading ---------------------------------------------------------------------------

LEGAL_TERMS = (
    "hereinafter", "heretofore", "hereunder", "herein", "hereby", "whereas", "thereof", "therein",
    "aforementioned", "aforesaid", "notwithstanding", "pursuant to", "inter alia", "in witness whereof",
    "mutatis mutandis",
)  # fmt: skip
NONE_PHRASES = (
    "none",
    "no expiration",
    "no expiration date",
    "never",
    "does not expire",
    "end of the research study",
)


def _empty(text: str) -> bool:
    return text.strip() == ""


def _legal_term_present(text: str) -> bool:
    lowered = text.lower()
    for term in LEGAL_TERMS:
        start = lowered.find(term)
        while start != -1:
            before = lowered[start - 1] if start else " "
            end = start + len(term)
            after = lowered[end] if end < len(lowered) else " "
            if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
                return True
            start = lowered.find(term, start + 1)
    return False


def _longest_sentence(text: str) -> int:
    for mark in ".!?;:":
        text = text.replace(mark, "\n")
    return max((len(line.split()) for line in text.split("\n")), default=0)


def expected_codes(f: SignedForm, today: datetime.date) -> set[str]:
    """45 CFR 164.508 read again, one question per paragraph."""
    found: set[str] = set()
    # (c)(1)(i)-(iv): the descriptive core elements.
    for element, code in [
        (f.phi_description, "missing_phi_description"),
        (f.disclosers, "missing_disclosers"),
        (f.recipients, "missing_recipients"),
        (f.purpose, "missing_purpose"),
    ]:
        if _empty(element):
            found.add(code)
    if f.purpose.strip().lower() in ("at the request of the individual", "at the request of the individual."):
        if f.initiated_by != "individual":
            found.add("purpose_at_request_not_individual")
    # (c)(1)(v): a date or an event; "none" for research only.
    none_words = f.expiration.strip().lower().rstrip(".").strip() in NONE_PHRASES
    dated_or_event = f.expires_on is not None or f.expiry_event.strip() != ""
    if none_words:
        if f.kind != "research":
            found.add("expiration_none_not_research")
        if dated_or_event:
            found.add("expiration_contradictory")
    elif not dated_or_event:
        found.add("missing_expiration")
    if dated_or_event and f.expires_on and f.signed_on and f.expires_on < f.signed_on:
        found.add("expiration_before_signature")
    # (c)(1)(vi): signature and date; a representative's authority.
    if _empty(f.signer_name):
        found.add("missing_signature")
    if f.signed_on is None:
        found.add("missing_signature_date")
    elif (f.signed_on - today).days > 1:  # a signer a time zone ahead writes tomorrow's date
        found.add("signature_date_in_future")
    if f.by_representative and _empty(f.representative_authority):
        found.add("missing_representative_authority")
    # (c)(2): the three statements.
    for statement, code in [
        (f.revocation_rights, "missing_revocation_statement"),
        (f.conditioning_statement, "missing_conditioning_statement"),
        (f.redisclosure_statement, "missing_redisclosure_statement"),
    ]:
        if _empty(statement):
            found.add(code)
    # (c)(3): plain language.
    on_form = (f.phi_description, f.disclosers, f.recipients, f.purpose, f.revocation_rights)
    on_form += (f.conditioning_statement, f.redisclosure_statement, f.expiration)
    words = " \n".join([*on_form, f.remuneration_statement, f.extra_text])
    if _legal_term_present(words) or _longest_sentence(words) > 45:
        found.add("not_plain_language")
    # (a)(3)(ii): marketing paid for by a third party says so.
    if f.kind == "marketing" and f.remuneration_involved and _empty(f.remuneration_statement):
        found.add("missing_remuneration_statement")
    # (b)(2)(i) expired, (iii) revoked, (v) known false.
    if (f.expires_on and today > f.expires_on) or (
        f.expiry_event_occurred_on and today >= f.expiry_event_occurred_on
    ):
        found.add("expired")
    if f.revoked_on and today >= f.revoked_on:
        found.add("revoked")
    if f.known_false:
        found.add("known_false")
    # (b)(3) compound authorizations.
    others = set(f.combined_with)
    if others:
        if f.kind == "research":
            allowed = others.issubset({"authorization", "research_consent"})
        else:
            allowed = others == {"authorization"} and len(f.conditioned_on) == 0
        if not allowed:
            found.add("compound_authorization")
    # (b)(4) conditioning.
    forbidden = set(f.conditioned_on)
    if f.kind == "research":
        forbidden.discard("treatment")
    if forbidden:
        found.add("conditioning_prohibited")
    return found


def _text():
    return st.one_of(
        st.sampled_from(["", " ", "\n\t"]),  # missing or blank
        st.sampled_from(
            ["Your lab results.", "Our clinic.", "To tell you about new services.", "Herein the clinic."]
        ),
        st.text(alphabet="abc .;\n", max_size=60),
        st.just(" ".join(["word"] * 50)),  # a sentence too long to follow
    )


_dates = st.one_of(
    st.none(), st.dates(min_value=datetime.date(2024, 1, 1), max_value=datetime.date(2028, 12, 31))
)

forms = st.builds(
    SignedForm,
    kind=st.sampled_from(["marketing", "research", "media"]),
    phi_description=_text(),
    disclosers=_text(),
    recipients=_text(),
    purpose=st.one_of(
        _text(), st.sampled_from(["At the request of the individual", "at the request of the individual."])
    ),
    expiration=st.one_of(
        _text(), st.sampled_from(["None", "none.", "End of the research study", "never", "One year"])
    ),
    revocation_rights=_text(),
    conditioning_statement=_text(),
    redisclosure_statement=_text(),
    remuneration_involved=st.booleans(),
    remuneration_statement=_text(),
    extra_text=_text(),
    expires_on=_dates,
    expiry_event=st.sampled_from(["", "  ", "When you leave the plan"]),
    expiry_event_occurred_on=_dates,
    signer_name=_text(),
    signed_on=_dates,
    by_representative=st.booleans(),
    representative_authority=_text(),
    initiated_by=st.sampled_from(["individual", "covered_entity"]),
    combined_with=st.frozensets(
        st.sampled_from(
            [
                "authorization",
                "psychotherapy_notes_authorization",
                "research_consent",
                "treatment_consent",
                "privacy_notice",
                "other",
            ]
        ),
        max_size=3,
    ),
    conditioned_on=st.frozensets(
        st.sampled_from(["treatment", "payment", "enrollment", "eligibility"]), max_size=2
    ),
    revoked_on=_dates,
    known_false=st.booleans(),
)


@settings(max_examples=3000, deadline=None)
@given(form=forms, today=st.dates(min_value=datetime.date(2024, 6, 1), max_value=datetime.date(2028, 6, 1)))
def test_the_validator_agrees_with_an_independent_reading_of_the_rule(form, today):
    found = codes(form, today)
    assert len(found) == len(set(found)), "a defect is reported once"
    assert set(found) == expected_codes(form, today)
    assert set(found) <= set(DEFECTS)

"""Is this signed HIPAA authorization valid now? Every defect at once, each with a stable code.

    authorization_defects(form=SignedForm(...), today=date) -> list[Defect]   # [] means valid

Read from 45 CFR 164.508. The form is the whole signed document: its text elements, the signature
and the circumstances around it (who initiated it, what it was combined with, what was conditioned
on it, whether it was revoked or is known to be false). The validator is pure: recording paths call
it before anything is stored, and the send gate calls it again each time it asks, so an
authorization whose date has passed becomes invalid by itself.

The codes are a contract: the send gate reports them (`authorization_defective`), campaigns list
them as exclusion reasons and the API returns them. Add codes, never rename them. DEFECTS below is
the list (docs/authorizations.md repeats it).
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass, field


class Initiator:
    INDIVIDUAL = "individual"
    COVERED_ENTITY = "covered_entity"
    ALL = (INDIVIDUAL, COVERED_ENTITY)


# Documents an authorization may be combined with on one form (164.508(b)(3)).
class Combined:
    AUTHORIZATION = "authorization"  # another authorization (not for psychotherapy notes)
    PSYCHOTHERAPY_NOTES_AUTHORIZATION = "psychotherapy_notes_authorization"
    RESEARCH_CONSENT = "research_consent"  # consent to take part in the same research study
    TREATMENT_CONSENT = "treatment_consent"
    PRIVACY_NOTICE = "privacy_notice"  # the notice of privacy practices (164.520)
    OTHER = "other"
    ALL = (
        AUTHORIZATION,
        PSYCHOTHERAPY_NOTES_AUTHORIZATION,
        RESEARCH_CONSENT,
        TREATMENT_CONSENT,
        PRIVACY_NOTICE,
        OTHER,
    )


# What a covered entity may have made depend on signing (164.508(b)(4)).
CONDITIONABLE = ("treatment", "payment", "enrollment", "eligibility")

# The phrase (c)(1)(iv) accepts as a purpose, but only when the individual initiated the request.
AT_REQUEST_OF_INDIVIDUAL = "at the request of the individual"

# "none", "end of the research study" or similar: (c)(1)(v) accepts them for research only.
NO_EXPIRATION_WORDS = re.compile(
    r"^\s*(none|no expiration( date)?|never|does not expire|end of the research study)\s*\.*\s*$", re.I
)

# Plain language (164.508(c)(3)): legal boilerplate a patient should not have to decode, and
# sentences too long to follow. A conservative screen, not a readability score.
LEGALESE = re.compile(
    r"\b(hereinafter|heretofore|hereunder|herein|hereby|whereas|thereof|therein|aforementioned|"
    r"aforesaid|notwithstanding|pursuant to|inter alia|in witness whereof|mutatis mutandis)\b",
    re.I,
)
MAX_SENTENCE_WORDS = 45

# The signer may write their own local date, up to a day ahead of the organization's time zone.
SIGNATURE_DATE_TOLERANCE = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Defect:
    code: str
    paragraph: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "paragraph": self.paragraph, "message": self.message}


# code -> (paragraph of 45 CFR 164.508, sentence). The sentence is what staff and API clients read.
DEFECTS: dict[str, tuple[str, str]] = {
    "missing_phi_description": (
        "(c)(1)(i)",
        "The form does not describe the information to be used or disclosed.",
    ),
    "missing_disclosers": (
        "(c)(1)(ii)",
        "The form does not name who is authorized to make the use or disclosure.",
    ),
    "missing_recipients": (
        "(c)(1)(iii)",
        "The form does not name who may receive the information.",
    ),
    "missing_purpose": ("(c)(1)(iv)", "The form does not describe the purpose of the use or disclosure."),
    "purpose_at_request_not_individual": (
        "(c)(1)(iv)",
        "“At the request of the individual” describes the purpose only when the individual initiated "
        "the authorization; this one was initiated by the covered entity.",
    ),
    "missing_expiration": ("(c)(1)(v)", "The form has no expiration date or expiration event."),
    "expiration_none_not_research": (
        "(c)(1)(v)",
        "“None” or “end of the research study” is an acceptable expiration only for research.",
    ),
    "expiration_contradictory": (
        "(c)(1)(v)",
        "The form gives both an expiration date or event and “none”; it cannot be read either way.",
    ),
    "expiration_before_signature": (
        "(c)(1)(v)",
        "The expiration date is before the date of the signature.",
    ),
    "missing_signature": ("(c)(1)(vi)", "The form is not signed."),
    "missing_signature_date": ("(c)(1)(vi)", "The signature is not dated."),
    "signature_date_in_future": (
        "(c)(1)(vi)",
        "The date of the signature is in the future (more than a day ahead of the organization's date).",
    ),
    "missing_representative_authority": (
        "(c)(1)(vi)",
        "A personal representative signed, but the form does not describe their authority to act "
        "for the individual.",
    ),
    "missing_revocation_statement": (
        "(c)(2)(i)",
        "The form does not tell the individual of the right to revoke it in writing and how.",
    ),
    "missing_conditioning_statement": (
        "(c)(2)(ii)",
        "The form does not say whether treatment, payment, enrollment or eligibility may be "
        "conditioned on signing it.",
    ),
    "missing_redisclosure_statement": (
        "(c)(2)(iii)",
        "The form does not warn that information disclosed may be redisclosed by the recipient and no "
        "longer be protected.",
    ),
    "not_plain_language": ("(c)(3)", "The form is not written in plain language."),
    "missing_remuneration_statement": (
        "(a)(3)(ii)",
        "The marketing involves financial remuneration from a third party, but the form does not say so.",
    ),
    "expired": ("(b)(2)(i)", "The expiration date has passed or the expiration event has occurred."),
    "revoked": ("(b)(2)(iii)", "The individual revoked the authorization."),
    "compound_authorization": (
        "(b)(3)",
        "The authorization is combined with another document in a way the rule does not allow.",
    ),
    "conditioning_prohibited": (
        "(b)(4)",
        "Treatment, payment, enrollment or eligibility was conditioned on signing, which the rule "
        "forbids for this authorization.",
    ),
    "known_false": ("(b)(2)(v)", "Material information in the authorization is known to be false."),
}

# The text elements of (c)(1)-(c)(2) and the code each one's absence gives.
TEXT_ELEMENT_CODES: dict[str, str] = {
    "phi_description": "missing_phi_description",
    "disclosers": "missing_disclosers",
    "recipients": "missing_recipients",
    "purpose": "missing_purpose",
    "revocation_rights": "missing_revocation_statement",
    "conditioning_statement": "missing_conditioning_statement",
    "redisclosure_statement": "missing_redisclosure_statement",
}


@dataclass(frozen=True)
class SignedForm:
    """Everything the rule looks at. Text fields hold the words on the form ("" when absent)."""

    kind: str  # marketing, research or media (consent.models.AuthorizationKind)
    phi_description: str = ""
    disclosers: str = ""
    recipients: str = ""
    purpose: str = ""
    expiration: str = ""  # the expiration in words, as printed
    revocation_rights: str = ""
    conditioning_statement: str = ""
    redisclosure_statement: str = ""
    remuneration_involved: bool = False
    remuneration_statement: str = ""
    extra_text: str = ""  # anything else on the form (state notices, media terms): for plain language
    expires_on: datetime.date | None = None  # the last day it allows anything
    expiry_event: str = ""
    expiry_event_occurred_on: datetime.date | None = None
    signer_name: str = ""
    signed_on: datetime.date | None = None
    by_representative: bool = False
    representative_authority: str = ""
    initiated_by: str = Initiator.COVERED_ENTITY
    combined_with: frozenset[str] = field(default_factory=frozenset)
    conditioned_on: frozenset[str] = field(default_factory=frozenset)
    revoked_on: datetime.date | None = None
    known_false: bool = False


def _blank(value: str | None) -> bool:
    return not (value or "").strip()


def defect(code: str) -> Defect:
    """The defect of a code, with its paragraph and sentence."""
    paragraph, message = DEFECTS[code]
    return Defect(code=code, paragraph=f"45 CFR 164.508{paragraph}", message=message)


def authorization_defects(*, form: SignedForm, today: datetime.date) -> list[Defect]:
    """Every defect of the form on `today`, in the order of the regulation's paragraphs."""
    codes = [
        *_core_element_codes(form),
        *_expiration_codes(form),
        *_signature_codes(form, today),
        *_statement_codes(form),
        *_circumstance_codes(form, today),
    ]
    return [defect(code) for code in codes]


def _core_element_codes(form: SignedForm) -> tuple[str, ...]:
    return _core_codes(
        form.phi_description, form.disclosers, form.recipients, form.purpose, form.initiated_by
    )


# The text-only rules are cached: the gate asks about the same few documents for millions of people.
@functools.lru_cache(maxsize=4096)
def _core_codes(
    phi_description: str, disclosers: str, recipients: str, purpose: str, initiated_by: str
) -> tuple:
    elements = {
        "missing_phi_description": phi_description,
        "missing_disclosers": disclosers,
        "missing_recipients": recipients,
        "missing_purpose": purpose,
    }
    codes = [code for code, value in elements.items() if _blank(value)]
    at_request = purpose.strip().rstrip(".").lower() == AT_REQUEST_OF_INDIVIDUAL
    if at_request and initiated_by != Initiator.INDIVIDUAL:
        codes.append("purpose_at_request_not_individual")
    return tuple(codes)


def _expiration_codes(form: SignedForm) -> list[str]:
    says_none = bool(NO_EXPIRATION_WORDS.match(form.expiration))
    has_end = form.expires_on is not None or not _blank(form.expiry_event)
    if not has_end and not says_none:
        return ["missing_expiration"]
    codes = []
    if says_none and form.kind != "research":
        codes.append("expiration_none_not_research")
    if says_none and has_end:
        codes.append("expiration_contradictory")
    if form.expires_on and form.signed_on and form.expires_on < form.signed_on:
        codes.append("expiration_before_signature")
    return codes


def _signature_codes(form: SignedForm, today: datetime.date) -> list[str]:
    codes = []
    if _blank(form.signer_name):
        codes.append("missing_signature")
    if form.signed_on is None:
        codes.append("missing_signature_date")
    elif form.signed_on > today + SIGNATURE_DATE_TOLERANCE:
        codes.append("signature_date_in_future")
    if form.by_representative and _blank(form.representative_authority):
        codes.append("missing_representative_authority")
    return codes


def _statement_codes(form: SignedForm) -> tuple[str, ...]:
    return _statement_codes_of(
        form.kind,
        form.revocation_rights,
        form.conditioning_statement,
        form.redisclosure_statement,
        form.remuneration_involved,
        form.remuneration_statement,
        _words_on_form(form),
    )


@functools.lru_cache(maxsize=4096)
def _statement_codes_of(
    kind: str,
    revocation_rights: str,
    conditioning_statement: str,
    redisclosure_statement: str,
    remuneration_involved: bool,
    remuneration_statement: str,
    words: str,
) -> tuple[str, ...]:
    statements = {
        "missing_revocation_statement": revocation_rights,
        "missing_conditioning_statement": conditioning_statement,
        "missing_redisclosure_statement": redisclosure_statement,
    }
    codes = [code for code, value in statements.items() if _blank(value)]
    if not plain_language(words):
        codes.append("not_plain_language")
    if kind == "marketing" and remuneration_involved and _blank(remuneration_statement):
        codes.append("missing_remuneration_statement")
    return tuple(codes)


def _words_on_form(form: SignedForm) -> str:
    parts = [getattr(form, name) for name in TEXT_ELEMENT_CODES]
    return "\n".join([*parts, form.expiration, form.remuneration_statement, form.extra_text])


def plain_language(text: str) -> bool:
    """No legal boilerplate and no sentence longer than MAX_SENTENCE_WORDS words."""
    if LEGALESE.search(text):
        return False
    sentences = re.split(r"[.!?;:\n]+", text)
    return all(len(sentence.split()) <= MAX_SENTENCE_WORDS for sentence in sentences)


def _circumstance_codes(form: SignedForm, today: datetime.date) -> list[str]:
    codes = []
    past_date = form.expires_on is not None and form.expires_on < today
    event_occurred = form.expiry_event_occurred_on is not None and form.expiry_event_occurred_on <= today
    if past_date or event_occurred:
        codes.append("expired")
    if form.revoked_on is not None and form.revoked_on <= today:
        codes.append("revoked")
    if compound_refused(kind=form.kind, combined_with=form.combined_with, conditioned_on=form.conditioned_on):
        codes.append("compound_authorization")
    if conditioning_refused(kind=form.kind, conditioned_on=form.conditioned_on):
        codes.append("conditioning_prohibited")
    if form.known_false:
        codes.append("known_false")
    return codes


def compound_refused(*, kind: str, combined_with: frozenset[str], conditioned_on: frozenset[str]) -> bool:
    """(b)(3): research may join other permissions for the same study (i); a psychotherapy-notes
    authorization joins only its like (ii); any other authorization may join other authorizations,
    unless signing one of them was made a condition of treatment, payment, enrollment or
    eligibility (iii). Nothing else may share the form (treatment consent, the privacy notice...)."""
    if not combined_with:
        return False
    if kind == "research":
        return not combined_with <= {Combined.AUTHORIZATION, Combined.RESEARCH_CONSENT}
    if combined_with != {Combined.AUTHORIZATION}:
        return True
    return bool(conditioned_on)


def conditioning_refused(*, kind: str, conditioned_on: frozenset[str]) -> bool:
    """(b)(4): no conditioning, except research-related treatment on a research authorization
    (b)(4)(i). The health-plan and third-party exceptions ((ii), (iii)) never apply to marketing."""
    if kind == "research":
        return bool(conditioned_on - {"treatment"})
    return bool(conditioned_on)

"""State health-privacy rules as data. The send gate combines every rule that applies to a contact and
the most restrictive value of each field wins (OR for requirements, max for waiting periods, all
disclosure texts).

These rows encode a conservative reading of each law for email to patients; they are not legal
advice. Counsel should review them; add or change a state by editing RULES (each row cites its
source). A rule row applies in addition to DEFAULT (federal HIPAA + CAN-SPAM), never instead of it.

Which states apply (ConsentSettings.state_mode):
- strictest (default): every state the tenant operates in, plus the contact's own state, for all
  contacts — a tenant that cannot be sure where a patient lives treats everyone by the strictest rule.
- per_contact: the contact's own state; a contact without a known state falls back to the strictest
  rule of the operating states (never to no rule).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StateRule:
    code: str
    name: str
    law: str
    source: str  # citation (statute) and where to read it
    # Marketing to a contact needs a separate, specific consent to use consumer health data; being a
    # patient is itself health data, so this applies even when the message carries no other PHI.
    requires_separate_health_data_consent: bool = False
    # Every promotional topic (marketing, research, fundraising) needs an explicit opt-in.
    opt_in_required_for_all_promotion: bool = False
    # Shown on authorization forms and the preference center.
    required_disclosure_text: str = ""
    # Days between signing an authorization and its taking effect.
    waiting_period_days: int = 0


DEFAULT = StateRule(
    code="default",
    name="Federal baseline",
    law="HIPAA Privacy Rule (marketing, fundraising) and CAN-SPAM",
    source=(
        "45 CFR 164.501 and 164.508(a)(3) (marketing needs authorization); 45 CFR 164.514(f) "
        "(fundraising: opt-out in every communication); 15 U.S.C. 7704(a)(3)-(5) (CAN-SPAM opt-out, "
        "postal address)"
    ),
)

RULES: dict[str, StateRule] = {
    "CA": StateRule(
        code="CA",
        name="California",
        law="Confidentiality of Medical Information Act (CMIA); CCPA as amended by CPRA",
        source=(
            "Cal. Civ. Code 56.10(d) (no marketing use of medical information without authorization), "
            "56.11 (authorization form; the signer is entitled to a copy, 56.12); Cal. Civ. Code "
            "1798.121 (sensitive personal information: right to limit)"
        ),
        required_disclosure_text=(
            "California residents: you are entitled to receive a copy of this authorization "
            "(Cal. Civ. Code 56.12). You may limit the use of your sensitive personal information "
            "at any time from your email preferences."
        ),
    ),
    "WA": StateRule(
        code="WA",
        name="Washington",
        law="My Health My Data Act (MHMDA)",
        source=(
            "RCW 19.373.030(1) (consent to collect and, separately, to share consumer health data), "
            "19.373.020 (consumer health data privacy policy). HIPAA PHI is exempt (19.373.100); "
            "applied conservatively because contact lists mix PHI and consumer health data."
        ),
        requires_separate_health_data_consent=True,
        opt_in_required_for_all_promotion=True,
        required_disclosure_text=(
            "Washington residents: we use your consumer health data only with your consent, which "
            "you may withdraw at any time. Our Consumer Health Data Privacy Policy explains how."
        ),
    ),
    "NV": StateRule(
        code="NV",
        name="Nevada",
        law="Consumer health data law, SB 370 (2023)",
        source=(
            "Nevada Senate Bill 370 (82nd Session, 2023): consent to collect and, separately, to "
            "share consumer health data; consumer health data privacy policy"
        ),
        requires_separate_health_data_consent=True,
        opt_in_required_for_all_promotion=True,
        required_disclosure_text=(
            "Nevada residents: we collect and share consumer health data only with your consent, "
            "which you may withdraw at any time."
        ),
    ),
    "TX": StateRule(
        code="TX",
        name="Texas",
        law="Texas Medical Records Privacy Act (HB 300)",
        source=(
            "Tex. Health & Safety Code 181.152 (marketing with PHI: authorization; each communication "
            "names the sender and how to be removed from the mailing list, honoured within 45 days), "
            "181.154 (notice of electronic disclosure)"
        ),
        required_disclosure_text=(
            "Texas residents: this message is sent by the organization named above. You may ask to be "
            "removed from our mailing list at any time using the link in every email."
        ),
    ),
    "CT": StateRule(
        code="CT",
        name="Connecticut",
        law="Connecticut Data Privacy Act (CTDPA) as amended by SB 3 (2023)",
        source=(
            "Conn. Gen. Stat. 42-515 et seq.; 42-520(a)(4) (processing sensitive data, including "
            "consumer health data, needs consent)"
        ),
        requires_separate_health_data_consent=True,
        required_disclosure_text=(
            "Connecticut residents: we process consumer health data only with your consent, which you "
            "may withdraw at any time."
        ),
    ),
}


@dataclass(frozen=True)
class CombinedRule:
    """The most restrictive combination of several rules, with the codes it came from."""

    codes: tuple[str, ...]
    requires_separate_health_data_consent: bool
    opt_in_required_for_all_promotion: bool
    waiting_period_days: int
    disclosures: tuple[str, ...] = field(default=())

    @property
    def sources(self) -> list[str]:
        return [rule_for(code).source for code in self.codes]


def rule_for(code: str) -> StateRule:
    return RULES.get((code or "").upper(), DEFAULT)


def combine(codes: Iterable[str]) -> CombinedRule:
    """Most restrictive wins. Unknown codes fall back to DEFAULT, which always applies."""
    rules = [DEFAULT] + [RULES[c] for c in sorted({(c or "").upper() for c in codes}) if c in RULES]
    return CombinedRule(
        codes=tuple(rule.code for rule in rules),
        requires_separate_health_data_consent=any(r.requires_separate_health_data_consent for r in rules),
        opt_in_required_for_all_promotion=any(r.opt_in_required_for_all_promotion for r in rules),
        waiting_period_days=max(r.waiting_period_days for r in rules),
        disclosures=tuple(r.required_disclosure_text for r in rules if r.required_disclosure_text),
    )


def applicable_codes(*, mode: str, operating_states: Iterable[str], contact_state: str) -> list[str]:
    """The state codes whose rules apply to one contact under the tenant's mode."""
    operating = [s.upper() for s in operating_states]
    own = (contact_state or "").upper()
    if mode == "per_contact":
        return [own] if own else operating
    return [*operating, own] if own else operating


def rule_for_contact(*, mode: str, operating_states: Iterable[str], contact_state: str) -> CombinedRule:
    return combine(
        applicable_codes(mode=mode, operating_states=operating_states, contact_state=contact_state)
    )

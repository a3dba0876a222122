"""The DNS records a sender domain must publish, and the check of what is actually published."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from delivery import dkim
from delivery.inbound.verp import dmarc_report_address
from delivery.models import DkimKey, SenderDomain
from delivery.tls.resolver import Resolver

# Shown instead of an SPF record while the operator has not configured the include: a placeholder
# domain without an SPF record of its own would make the tenant's whole SPF evaluation a permerror
# (RFC 7208 5.2), so receivers would treat every message of the domain as unauthenticated.
SPF_UNCONFIGURED = (
    "Not available yet: the platform operator has not set DELIVERY_SPF_INCLUDE (the domain whose SPF "
    "record lists HealthMail's sending hosts). Do not add an include for HealthMail until it is set; "
    "ask your HealthMail operator."
)


def spf_include() -> str:
    """The domain every sender domain's SPF record must include; empty while unconfigured."""
    return str(getattr(settings, "DELIVERY_SPF_INCLUDE", "") or "").strip().lower()


@dataclass(frozen=True)
class DnsRecord:
    purpose: str  # SPF | DKIM <selector> | DMARC
    name: str
    type: str
    value: str
    required: bool = True
    key_id: str = ""
    unavailable: str = ""  # why no value can be given yet (shown instead of the value)


@dataclass(frozen=True)
class RecordCheck:
    record: DnsRecord
    ok: bool
    note: str


def dmarc_report_mailbox(sender_domain: SenderDomain) -> str:
    """Where DMARC aggregate reports go: the platform's report address for this tenant when
    DELIVERY_REPORTS_DOMAIN is set (so they reach the sender-health page; that domain must publish
    `<domain>._report._dmarc.<reports domain>` TXT "v=DMARC1", RFC 7489 7.1), else the domain's own."""
    reports_domain = str(getattr(settings, "DELIVERY_REPORTS_DOMAIN", "") or "").strip()
    if not reports_domain:
        return f"dmarc@{sender_domain.domain}"
    return dmarc_report_address(tenant_id=sender_domain.tenant_id, domain=reports_domain)


def expected_records(sender_domain: SenderDomain, keys: list[DkimKey]) -> list[DnsRecord]:
    domain = sender_domain.domain
    include = spf_include()
    spf = (
        DnsRecord("SPF", domain, "TXT", f"v=spf1 include:{include} ~all")
        if include
        else DnsRecord("SPF", domain, "TXT", "", unavailable=SPF_UNCONFIGURED)
    )
    records = [
        spf,
        DnsRecord(
            "DMARC",
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:{dmarc_report_mailbox(sender_domain)}",
        ),
    ]
    for key in keys:
        if key.state == DkimKey.State.RETIRED:
            continue
        records.append(
            DnsRecord(
                f"DKIM {key.selector} ({key.get_state_display()})",
                f"{key.selector}._domainkey.{domain}",
                "TXT",
                dkim.dns_record(key.public_key, key.algorithm),
                required=key.state == DkimKey.State.ACTIVE,
                key_id=str(key.pk),
            )
        )
    return records


def _tags(text: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
    return {name.strip().lower(): "".join(value.split()) for name, value in pairs}


def check_record(record: DnsRecord, resolver: Resolver) -> RecordCheck:
    published = resolver.txt(record.name).records
    if record.purpose == "SPF":
        if not spf_include():
            return RecordCheck(record, False, "cannot be checked: DELIVERY_SPF_INCLUDE is not configured")
        spf = [t for t in published if t.strip().lower().startswith("v=spf1")]
        if not spf:
            return RecordCheck(record, False, "no SPF record published")
        if len(spf) > 1:
            return RecordCheck(record, False, "more than one SPF record (receivers treat this as an error)")
        if f"include:{spf_include()}" not in spf[0].lower().split():
            return RecordCheck(record, False, f"SPF record does not include {spf_include()}")
        return RecordCheck(record, True, "published")
    if record.purpose == "DMARC":
        dmarc = [_tags(t) for t in published if t.strip().lower().startswith("v=dmarc1")]
        if len(dmarc) != 1 or "p" not in dmarc[0]:
            return RecordCheck(record, False, "no valid DMARC record published")
        return RecordCheck(record, True, f"published (p={dmarc[0]['p']})")
    expected = _tags(record.value)["p"]
    for text in published:
        if _tags(text).get("p") == expected:
            return RecordCheck(record, True, "published")
    return RecordCheck(record, False, "key not published" if not published else "published key differs")

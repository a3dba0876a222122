"""Sender domain reads for the pages (never the private keys)."""

from __future__ import annotations

import uuid

from delivery.models import DkimKey, SenderDomain
from healthmail.errors import NotFound

from .records import DnsRecord, expected_records


def sender_domain_list(*, tenant) -> list[SenderDomain]:
    return list(SenderDomain.objects.filter(tenant=tenant).order_by("domain"))


def sender_domain_get(*, tenant, sender_domain_id: uuid.UUID) -> SenderDomain:
    sender_domain = SenderDomain.objects.filter(tenant=tenant, pk=sender_domain_id).first()
    if sender_domain is None:
        raise NotFound("No such sender domain.")
    return sender_domain


def dkim_key_get(*, tenant, sender_domain: SenderDomain, key_id: uuid.UUID) -> DkimKey:
    key = DkimKey.objects.filter(tenant=tenant, sender_domain=sender_domain, pk=key_id).first()
    if key is None:
        raise NotFound("No such key.")
    return key


def sender_domain_records(*, sender_domain: SenderDomain) -> tuple[list[DkimKey], list[DnsRecord]]:
    keys = list(DkimKey.objects.filter(sender_domain=sender_domain).defer("private_key"))
    return keys, expected_records(sender_domain, keys)

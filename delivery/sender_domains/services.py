"""Sender domain writes: add, check DNS, rotate and retire keys; and the signing key the engine uses."""

from __future__ import annotations

import re
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
from delivery import dkim
from delivery.models import DkimKey, SenderDomain
from delivery.tls.resolver import Resolver
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict

from .records import RecordCheck, check_record, expected_records

DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class SenderDomainUnverified(ApplicationError):
    status_code = 409
    title = "Sender domain not verified"


def normalize_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ApplicationError("Enter a valid domain name, like mail.example.org.") from error
    if not DOMAIN.match(domain):
        raise ApplicationError("Enter a valid domain name, like mail.example.org.")
    return domain


def _new_key(*, tenant, sender_domain: SenderDomain, state: str, algorithm: str) -> DkimKey:
    private_pem, public = dkim.generate_key(algorithm)
    taken = set(DkimKey.objects.filter(sender_domain=sender_domain).values_list("selector", flat=True))
    stamp = timezone.now().strftime("%Y%m")
    selector = next(
        f"hm{stamp}{suffix}" for suffix in "abcdefghijklmnopqrstuvwxyz" if f"hm{stamp}{suffix}" not in taken
    )
    return DkimKey.objects.create(
        id=uuid.uuid4(),
        tenant=tenant,
        sender_domain=sender_domain,
        selector=selector,
        algorithm=algorithm,
        private_key=private_pem,
        public_key=public,
        state=state,
        activated_at=timezone.now() if state == DkimKey.State.ACTIVE else None,
    )


@transaction.atomic
def sender_domain_add(*, tenant, actor: Actor, domain: str) -> SenderDomain:
    """A new, unverified domain with its first key (active once the domain verifies)."""
    domain = normalize_domain(domain)
    try:
        with transaction.atomic():
            sender_domain = SenderDomain.objects.create(id=uuid.uuid4(), tenant=tenant, domain=domain)
    except IntegrityError as error:
        raise Conflict("This domain is already set up.") from error
    key = _new_key(
        tenant=tenant, sender_domain=sender_domain, state=DkimKey.State.ACTIVE, algorithm="rsa-sha256"
    )
    audit.record(
        actor=actor,
        action="sender_domain.add",
        target=sender_domain,
        tenant=tenant,
        details={"selector": key.selector},
    )
    return sender_domain


@transaction.atomic
def sender_domain_check(
    *, tenant, actor: Actor, sender_domain: SenderDomain, resolver: Resolver
) -> list[RecordCheck]:
    """Look up every record; promote a pending key once published; verified = SPF + DMARC + active DKIM."""
    keys = list(DkimKey.objects.filter(sender_domain=sender_domain).select_for_update())
    checks = [check_record(record, resolver) for record in expected_records(sender_domain, keys)]
    published = {c.record.key_id for c in checks if c.ok and c.record.key_id}
    pending = [k for k in keys if k.state == DkimKey.State.PENDING and str(k.pk) in published]
    if pending:
        now = timezone.now()
        DkimKey.objects.filter(sender_domain=sender_domain, state=DkimKey.State.ACTIVE).update(
            state=DkimKey.State.RETIRING
        )
        DkimKey.objects.filter(pk=pending[0].pk).update(state=DkimKey.State.ACTIVE, activated_at=now)
        keys = list(DkimKey.objects.filter(sender_domain=sender_domain))
        checks = [check_record(record, resolver) for record in expected_records(sender_domain, keys)]
    verified = all(c.ok for c in checks if c.record.required) and any(
        c.ok and c.record.required and c.record.key_id for c in checks
    )
    now = timezone.now()
    sender_domain.status = SenderDomain.Status.VERIFIED if verified else SenderDomain.Status.UNVERIFIED
    sender_domain.checked_at = now
    if verified and sender_domain.verified_at is None:
        sender_domain.verified_at = now
    if not verified:
        sender_domain.verified_at = None
    sender_domain.last_check = {c.record.name: {"ok": c.ok, "note": c.note} for c in checks}
    sender_domain.save(update_fields=["status", "checked_at", "verified_at", "last_check"])
    audit.record(
        actor=actor,
        action="sender_domain.check",
        target=sender_domain,
        tenant=tenant,
        outcome=AuditEvent.Outcome.SUCCESS if verified else AuditEvent.Outcome.FAILURE,
        details={"verified": verified, "promoted": [k.selector for k in pending[:1]]},
    )
    return checks


@transaction.atomic
def dkim_key_rotate(
    *, tenant, actor: Actor, sender_domain: SenderDomain, algorithm: str = "rsa-sha256"
) -> DkimKey:
    if DkimKey.objects.filter(sender_domain=sender_domain, state=DkimKey.State.PENDING).exists():
        raise Conflict("A new key is already waiting to be published; publish it and run the check.")
    key = _new_key(
        tenant=tenant, sender_domain=sender_domain, state=DkimKey.State.PENDING, algorithm=algorithm
    )
    audit.record(
        actor=actor, action="dkim_key.rotate", target=key, tenant=tenant, details={"selector": key.selector}
    )
    return key


@transaction.atomic
def dkim_key_retire(*, tenant, actor: Actor, key: DkimKey) -> DkimKey:
    """Only a key that no longer signs, after receivers had time to verify mail signed with it."""
    if key.state != DkimKey.State.RETIRING:
        raise ApplicationError("Only a key that has been replaced can be retired.")
    key.state, key.retired_at = DkimKey.State.RETIRED, timezone.now()
    key.save(update_fields=["state", "retired_at"])
    audit.record(
        actor=actor, action="dkim_key.retire", target=key, tenant=tenant, details={"selector": key.selector}
    )
    return key


def sender_domain_signing_key(*, tenant, domain: str) -> dkim.SigningKey:
    """The key to sign mail from `domain` with; refuses unknown or unverified domains (the engine
    checks every batch through sender_domain_key, so a domain that fails a later check stops sending)."""
    domain = normalize_domain(domain)
    sender_domain = SenderDomain.objects.filter(tenant=tenant, domain=domain).first()
    return sender_domain_key(sender_domain=sender_domain, domain=domain)


def sender_domain_key(*, sender_domain: SenderDomain | None, domain: str) -> dkim.SigningKey:
    """As sender_domain_signing_key, for a row already read in the tenant's context (the engine reads
    it by the message's sender_domain_id once per batch, and no longer again by name)."""
    if sender_domain is None or sender_domain.status != SenderDomain.Status.VERIFIED:
        raise SenderDomainUnverified(f"Mail from {domain} is refused: the domain is not verified.")
    key = DkimKey.objects.filter(sender_domain=sender_domain, state=DkimKey.State.ACTIVE).first()
    if key is None:
        raise SenderDomainUnverified(f"Mail from {domain} is refused: it has no active DKIM key.")
    return dkim.SigningKey(
        domain=domain, selector=key.selector, algorithm=key.algorithm, private_key_pem=key.private_key
    )

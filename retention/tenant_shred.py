"""Shredding a whole tenant, with a signed certificate (issue 25).

Refused while the tenant has any legal hold that is not released. The keys go (healthmail/crypto/
tenant_shred.py), the tenant is suspended, and a certificate states what the database did: keys
destroyed, rows whose ciphertext they protected. It is signed with the platform key derived from
the current master key (published in the key history first), not with the tenant's own signing key
— that key is sealed by the tenant's data key and is destroyed with it — so anyone holding the
published key history can check it, also after the master key was rotated away.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from django.db import transaction
from django.utils import timezone

from audit import chain
from audit import services as audit
from healthmail.actors import Actor
from healthmail.crypto.tenant_shred import tenant_keys_shred
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .holds import holds_lock_exclusive
from .models import LegalHold

CERTIFICATE_KIND = "healthmail.tenant-shred-certificate.v1"


class TenantUnderHold(ApplicationError):
    """A legal hold keeps the tenant's records: nothing is destroyed."""


def certificate_message(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def certificate_verifies(certificate: dict) -> bool:
    """Checked as every platform signature is: with the key published in the key history."""
    return chain.signature_ok(
        certificate_message(certificate["document"]), certificate["signature"], certificate["key_id"]
    )


@transaction.atomic
def tenant_shred(*, tenant: Tenant, actor: Actor, reason: str) -> dict:
    """Destroy every key of the tenant and return the signed certificate."""
    with tenant_context(tenant):
        holds_lock_exclusive(tenant.pk)  # no hold can be placed while this runs
        held = LegalHold.objects.filter(tenant=tenant).exclude(status=LegalHold.Status.RELEASED).count()
    if held:
        raise TenantUnderHold(
            f"{held} legal hold(s) on {tenant.slug} are not released: nothing was destroyed.",
            code="legal_hold",
        )
    counts = tenant_keys_shred(tenant.pk)
    suspended = Tenant.objects.filter(pk=tenant.pk).update(
        status=Tenant.Status.SUSPENDED,
        status_changed_at=timezone.now(),
        status_reason="Shredded: every key destroyed.",
    )
    document = {
        "kind": CERTIFICATE_KIND,
        "tenant": {"id": str(tenant.pk), "slug": tenant.slug, "name": tenant.name},
        "shredded_at": timezone.now().isoformat(),
        "reason": reason,
        "method": "crypto-erase (NIST SP 800-88): tenant key and epoch keys destroyed in the key store; "
        "data and index key rows deleted",
        "counts": {**asdict(counts), "tenant_suspended": suspended},
    }
    chain.master_keys_publish()
    signature, key_id = chain.sign(certificate_message(document))
    certificate = {"document": document, "signature": signature, "key_id": key_id}
    audit.record(
        actor=actor,
        action="crypto.tenant_shred",
        target=tenant,
        tenant=tenant,
        reason=reason,
        details={
            "certificate_sha256": hashlib.sha256(certificate_message(document)).hexdigest(),
            "key_id": key_id,
            "counts": document["counts"],
        },
    )
    return certificate

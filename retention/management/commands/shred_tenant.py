"""Shred a whole tenant: destroy its keys, suspend it, print a signed certificate.

    manage.py shred_tenant --tenant SLUG --reason "contract ended" --yes-destroy-everything
        [--certificate FILE]

Refused while any legal hold of the tenant is not released. Irreversible: no backup of the database
opens anything of the tenant afterwards (docs/phi-protection.md, Shredding a tenant).
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.models import Tenant
from retention.tenant_shred import tenant_shred


class Command(BaseCommand):
    help = "Crypto-shred a whole tenant (every key destroyed) and issue a signed certificate."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument(
            "--reason", required=True, help="Why (kept in the certificate and the audit trail)."
        )
        parser.add_argument(
            "--yes-destroy-everything",
            action="store_true",
            dest="confirmed",
            help="Confirms that every record of the tenant becomes unreadable, in every backup too.",
        )
        parser.add_argument("--certificate", help="Also write the signed certificate (JSON) to this file.")

    def handle(self, *args, tenant, reason, confirmed, certificate=None, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        if not confirmed:
            raise CommandError(
                f"This destroys every key of {tenant!r}: nothing of it can be read again, in any backup. "
                "Run again with --yes-destroy-everything to confirm."
            )
        if not reason.strip():
            raise CommandError("A reason is required.")
        try:
            issued = tenant_shred(tenant=found, actor=Actor.system("manage.py shred_tenant"), reason=reason)
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        text = json.dumps(issued, indent=2, sort_keys=True)
        if certificate:
            Path(certificate).write_text(text + "\n")
        self.stdout.write(text)
        self.stdout.write(
            self.style.SUCCESS(f"Tenant {tenant} shredded; certificate signed with {issued['key_id']}.")
        )

"""`manage.py sender_domain_check --tenant <slug> --domain <domain> [--zone-file <path>]`

Runs the same check as the sender-domain page (delivery.sender_domains.services.sender_domain_check,
audited as the system), through the configured resolver (DELIVERY_RESOLVER) or, with --zone-file, the
static resolver on that zone file: an operator on an air-gapped or split-horizon network verifies
against the records they know are published. Exits 1 when the domain is not verified.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from delivery.models import SenderDomain
from delivery.sender_domains.services import normalize_domain, sender_domain_check
from delivery.tls.resolver import get_resolver
from delivery.tls.zone import zone_resolver
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "Check a sender domain's DNS records (SPF, DKIM, DMARC) as the sender-domain page does."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--domain", required=True, help="The sender domain, as set up for the tenant.")
        parser.add_argument(
            "--zone-file", type=Path, help="Answer from this zone file (delivery/tls/zone.py)."
        )

    def handle(self, *args, tenant: str, domain: str, zone_file: Path | None, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with the slug {tenant!r}.")
        try:
            name = normalize_domain(domain)
            resolver = zone_resolver(zone_file) if zone_file else get_resolver()
            with tenant_context(found):
                sender = SenderDomain.objects.filter(tenant=found, domain=name).first()
                if sender is None:
                    raise CommandError(
                        f"{name} is not a sender domain of {found.slug}; add it on its page first."
                    )
                checks = sender_domain_check(
                    tenant=found, actor=Actor.system("manage.py"), sender_domain=sender, resolver=resolver
                )
                sender.refresh_from_db()
        except ApplicationError as error:
            raise CommandError(error.message) from error
        for check in checks:
            mark = "ok " if check.ok else "MISSING" if check.record.required else "optional"
            self.stdout.write(
                f"{mark:8} {check.record.purpose:28} {check.record.type} {check.record.name}: {check.note}"
            )
            if not check.ok:
                self.stdout.write(f"{'':8} publish: {check.record.value}")
        verified = sender.status == SenderDomain.Status.VERIFIED
        self.stdout.write(f"{name}: {'verified' if verified else 'NOT verified'}")
        if not verified:
            raise SystemExit(1)

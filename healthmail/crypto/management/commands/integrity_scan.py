"""List every damaged record: a ciphertext that does not decrypt, a tenant key that does not unwrap,
an index its row's own value denies.

    manage.py integrity_scan [--tenant SLUG] [--alert]

Prints one line per damaged record (table, id, what failed; never a value) and exits with status 1
when there is any. With --alert each one also raises its critical alert (once per record).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from healthmail.crypto.integrity import damage_report, damaged_rows
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "List every damaged (undecryptable, tampered or unconfirmed) record."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Tenant slug (default: every tenant).")
        parser.add_argument("--alert", action="store_true", help="Raise the critical alert for each.")

    def handle(self, *args: Any, tenant: str | None = None, alert: bool = False, **options: Any) -> None:
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {tenant!r}.")
        found = 0
        for each in tenants:
            for damage in damaged_rows(each.pk):
                found += 1
                self.stdout.write(f"{each.slug}\t{damage.table}\t{damage.object_id}\t{damage.problem}")
                if alert:
                    damage_report(damage, found_by="integrity_scan")
        if found:
            raise CommandError(f"{found} damaged record(s).")
        self.stdout.write(self.style.SUCCESS("No damaged records."))

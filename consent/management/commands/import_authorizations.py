"""Back-fill authorizations signed elsewhere from a CSV file, with a report naming every refused row
and why (columns: see consent/authorization_import.py and docs/authorizations.md)."""

import csv

from django.core.management.base import BaseCommand, CommandError

from consent.authorization_import import authorization_import_rows
from healthmail.actors import Actor
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "Record HIPAA authorizations signed elsewhere from a CSV file; report each refused row."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file (UTF-8, a header row).")
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--recorded-by", default="", help="Who is recording (kept with each record).")

    def handle(self, *args, file: str, tenant: str, recorded_by: str, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        actor = Actor.system(f"manage.py import_authorizations {recorded_by}".strip()[:64])
        try:
            with open(file, newline="", encoding="utf-8-sig") as handle:
                outcomes = authorization_import_rows(tenant=found, actor=actor, rows=csv.DictReader(handle))
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from error
        refused = [o for o in outcomes if not o.recorded]
        for outcome in refused:
            self.stdout.write(f"line {outcome.line}: refused")
            for reason in outcome.reasons:
                self.stdout.write(f"  - {reason}")
        duplicates = sum(1 for o in outcomes if o.duplicate)
        recorded = len(outcomes) - len(refused) - duplicates
        self.stdout.write(
            f"{recorded} recorded, {duplicates} already recorded before, {len(refused)} refused, "
            f"{len(outcomes)} rows."
        )
        if refused:
            raise CommandError(f"{len(refused)} rows were refused; see the report above.", returncode=2)

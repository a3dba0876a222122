"""Recompute contacts' segmentation tokens (ICD-10-CM category tokens for conditions written before
conditions matched by category, demographic tokens, sensitive categories) from the stored values.

    manage.py reindex_conditions [--tenant SLUG] [--batch N]

Interrupt it at any time and run it again: rows already right are read, compared and left alone.
"""

from django.core.management.base import BaseCommand, CommandError

from contacts.reindex import DEFAULT_BATCH, contact_tokens_reindex
from healthmail.actors import Actor
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "Recompute contacts' condition (and other segmentation) tokens from their stored values."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Tenant slug (default: every tenant).")
        parser.add_argument(
            "--batch",
            type=int,
            default=DEFAULT_BATCH,
            help=f"Contacts per transaction (default {DEFAULT_BATCH}).",
        )

    def _progress(self, done: int, total: int) -> None:
        self.stdout.write(f"  {done}/{total} contacts")

    def handle(self, *args, tenant=None, batch=DEFAULT_BATCH, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {tenant!r}.")
        actor = Actor.system("manage.py reindex_conditions")
        for each in tenants:
            self.stdout.write(f"Tenant {each.slug}:")
            result = contact_tokens_reindex(
                tenant=each, actor=actor, batch_size=batch, progress=self._progress
            )
            self.stdout.write(self.style.SUCCESS(f"  {result.changed} of {result.scanned} contacts changed."))

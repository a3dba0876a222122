"""`manage.py create_tenant --name ... --slug ... --postal-address ... [--timezone ...]` (audited)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant (organization). It can sign in and configure; PHI waits for a BAA."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", required=True, help="Short name: lowercase letters, digits, hyphens.")
        parser.add_argument("--postal-address", required=True, help="Postal address for the CAN-SPAM footer.")
        parser.add_argument("--timezone", default="America/New_York", help="IANA time zone.")

    def handle(
        self, *args: Any, name: str, slug: str, postal_address: str, timezone: str, **options: Any
    ) -> None:
        try:
            tenant = tenant_create(
                actor=Actor.system("manage.py"),
                name=name,
                slug=slug,
                postal_address=postal_address,
                timezone_name=timezone,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.pk}). Record a BAA before any PHI flows.")

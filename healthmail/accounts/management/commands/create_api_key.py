"""Create an API key from the command line (bootstrap, automation). The key is printed once."""

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from healthmail.accounts.api_keys import SCOPES, api_key_create
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once. Scopes: " + ", ".join(SCOPES)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument(
            "--scopes", required=True, help="Comma-separated, e.g. contacts:read,messages:send"
        )
        parser.add_argument("--name", default="Command-line key", help="What the key is for.")
        parser.add_argument("--expires-days", type=int, default=None, help="Expire after this many days.")

    def handle(
        self, *args: Any, tenant: str, scopes: str, name: str, expires_days: int | None, **options: Any
    ) -> None:
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1.")
        expires_at = timezone.now() + datetime.timedelta(days=expires_days) if expires_days else None
        try:
            issued = api_key_create(
                actor=Actor.system("manage.py create_api_key"),
                tenant=found,
                name=name,
                scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
                expires_at=expires_at,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(issued.plaintext)
        self.stdout.write(
            "Store this key now in a secret store: it is not shown again and cannot be recovered."
        )

"""Register a SMART Backend Services client from its public JWK Set; prints the client_id."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from healthmail.accounts.api_keys import SCOPES
from healthmail.accounts.smart import smart_client_register
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Register a SMART backend client (private_key_jwt, RS384/ES384) for a tenant. "
        "--scopes caps what its tokens may carry: " + ", ".join(SCOPES)
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--name", required=True, help="The system, e.g. 'Epic production'.")
        keys = parser.add_mutually_exclusive_group(required=True)
        keys.add_argument("--jwks", type=Path, help="A file holding the public JWK Set.")
        keys.add_argument("--jwks-url", default="", help="The https URL the client publishes its JWK Set at.")
        parser.add_argument(
            "--scopes", required=True, help="Comma-separated, e.g. contacts:read,messages:send"
        )

    def handle(
        self,
        *args: Any,
        tenant: str,
        name: str,
        jwks: Path | None,
        jwks_url: str,
        scopes: str,
        **options: Any,
    ) -> None:
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        key_set = None
        if jwks is not None:
            try:
                key_set = json.loads(jwks.read_text())
            except (OSError, ValueError) as error:
                raise CommandError(f"Cannot read the JWK Set: {error}") from error
        try:
            client = smart_client_register(
                actor=Actor.system("manage.py smart_client_register"),
                tenant=found,
                name=name,
                jwks=key_set,
                jwks_url=jwks_url,
                scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(client.client_id)
        self.stdout.write("Give this client_id to the system: it is the iss and sub of its assertions.")

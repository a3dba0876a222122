"""Revoke a SMART backend client and every access token it still holds."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from healthmail.accounts.models import SmartClient
from healthmail.accounts.smart import smart_client_revoke
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "Revoke a SMART backend client (by client_id); its live tokens stop at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--client-id", required=True)

    def handle(self, *args: Any, tenant: str, client_id: str, **options: Any) -> None:
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        with tenant_context(found):
            client = SmartClient.objects.for_tenant(found).filter(client_id=client_id).first()
        if client is None:
            raise CommandError("No such client in this tenant.")
        try:
            ended = smart_client_revoke(
                actor=Actor.system("manage.py smart_client_revoke"), tenant=found, client=client
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Revoked {client_id}; {ended} live access token(s) ended.")

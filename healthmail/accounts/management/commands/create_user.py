"""Create a person who can sign in at once, for scripted deployments.

    manage.py create_user --tenant clinic-a --role tenant_admin --email admin@example.org [--password ...]
    manage.py create_user --platform-admin --email ops@example.org

Prints the otpauth:// provisioning URI of the new authenticator once (and the password when one was
generated); load the URI into an authenticator app or a secrets store. Audited as the system.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from healthmail.accounts import services
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "Create a user with a confirmed authenticator (and a membership unless --platform-admin)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--tenant", help="The tenant's slug.")
        parser.add_argument("--role", choices=Role.values)
        parser.add_argument("--platform-admin", action="store_true")
        parser.add_argument(
            "--password", help="Omit to generate one (printed once). Prefer omitting it over shell history."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["platform_admin"] == bool(options["tenant"]):
            raise CommandError("Give either --tenant and --role, or --platform-admin.")
        if options["tenant"] and not options["role"]:
            raise CommandError("--role is required with --tenant.")
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with the slug {options['tenant']!r}.")
        password = options["password"] or secrets.token_urlsafe(18)
        try:
            user, device = services.user_provision(
                actor=Actor.system("create_user"),
                email=options["email"],
                password=password,
                tenant=tenant,
                role=options["role"],
                platform_admin=options["platform_admin"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Created {user.email}.")
        if not options["password"]:
            self.stdout.write(f"Password: {password}")
        self.stdout.write(f"TOTP provisioning URI (shown once): {device.config_url}")

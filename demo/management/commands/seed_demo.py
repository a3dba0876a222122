"""`manage.py seed_demo`: the demo tenant, an active BAA, one synthetic user per role, ~200
synthetic patients (contacts/synthetic.py) and the demo story (demo/story.py: a
sender domain, consents, a campaign ready to send, an API key). Idempotent: patients are upserted by
their synthetic external id and story pieces are made only when missing, so a re-run changes nothing.

`--publish-dns` (the devstack) writes the sender domain's records into the dev DNS zone file
(DELIVERY_RESOLVER=static) and verifies the domain through the product's own check.

On first creation each login (email, password, TOTP secret and otpauth:// URI) is printed once and
written to .devstack/demo-logins.txt (mode 0600); later runs only point at that file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from contacts.services import contact_upsert_many
from contacts.synthetic import synthetic_contacts
from demo.story import API_KEY_NAME, story_ensure
from healthmail.accounts.models import User
from healthmail.accounts.roles import PLATFORM_ADMIN, Role
from healthmail.accounts.services import user_provision
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.models import Service, Tenant
from healthmail.tenants.services import baa_record, tenant_create

DEMO_SLUG = "demo"
DEMO_PATIENTS = 200
DEMO_PATIENT_SEED = 2024
DEMO_DOMAIN = "demo.healthmail.test"
# Only ever used when settings.DEBUG is on (a developer's machine); otherwise passwords are random.
DEV_PASSWORD = "demo-only-password-not-for-production"  # noqa: S105
DEMO_USERS = (
    ("admin", PLATFORM_ADMIN),
    ("tenant_admin", Role.TENANT_ADMIN),
    ("marketer", Role.MARKETER),
    ("compliance", Role.COMPLIANCE_OFFICER),
    ("clinical", Role.CLINICAL_REVIEWER),
)


def default_logins_file() -> Path:
    return Path(settings.BASE_DIR) / ".devstack" / "demo-logins.txt"


def write_private_file(path: Path, text: str) -> None:
    """Create or replace a file readable by its owner only (the file holds passwords and TOTP seeds)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


class Command(BaseCommand):
    help = "Create the demo tenant with an active BAA and one synthetic user per role (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--logins-file", type=Path, default=None, help="Where to write the demo logins.")
        parser.add_argument(
            "--publish-dns",
            action="store_true",
            help="Publish the demo sender domain's records in the static DNS zone file and verify it.",
        )

    def handle(self, *args, logins_file: Path | None, publish_dns: bool = False, **options):
        logins_file = logins_file or default_logins_file()
        existing = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if existing is not None:
            self._patients(existing)
            self._story(existing, logins_file, publish_dns)
            self.stdout.write(f"demo data exists; logins in {self._display(logins_file)}")
            return
        taken = [
            f"{local}@{DEMO_DOMAIN}"
            for local, _ in DEMO_USERS
            if User.objects.filter(username=f"{local}@{DEMO_DOMAIN}").exists()
        ]
        if taken:
            raise CommandError(f"Users {', '.join(taken)} exist without the demo tenant; remove them first.")
        try:
            with transaction.atomic():
                actor = Actor.system("seed_demo")
                tenant = self._tenant(actor)
                lines = [self._user(actor, tenant, local, role) for local, role in DEMO_USERS]
                self._patients(tenant)
                text = self._logins_text(lines)
                # Written inside the transaction: if the commit fails, the next run rewrites it.
                write_private_file(logins_file, text)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(text)
        self.stdout.write(f"These logins were written to {self._display(logins_file)} (mode 0600).")
        self._story(tenant, logins_file, publish_dns)

    def _story(self, tenant: Tenant, logins_file: Path, publish_dns: bool) -> None:
        try:
            story = story_ensure(tenant=tenant, users_domain=DEMO_DOMAIN, publish_dns=publish_dns)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        for note in story.notes:
            self.stdout.write(f"demo: {note}")
        if story.api_key:
            previous = logins_file.read_text(encoding="utf-8") if logins_file.exists() else ""
            line = f"API key ({API_KEY_NAME}, scopes messages:send messages:read): {story.api_key}\n"
            write_private_file(logins_file, previous + ("\n" if previous else "") + line)
            self.stdout.write(
                f"demo: an API key for POST /api/v1/messages was written to {self._display(logins_file)}"
            )

    def _tenant(self, actor: Actor) -> Tenant:
        tenant = tenant_create(
            actor=actor,
            name="Demo Health System",
            slug=DEMO_SLUG,
            postal_address="100 Synthetic Way, Suite 200, Springfield, ST 00000 (demo address)",
            timezone_name="America/New_York",
        )
        today = timezone.localdate()
        baa_record(
            actor=actor,
            tenant=tenant,
            counterparty="Demo Health System",
            signed_on=today,
            effective_on=today,
            expires_on=None,
            signatory_name="Dana Demo",
            signatory_title="Privacy Officer (synthetic)",
            document_sha256=hashlib.sha256(b"Synthetic demo BAA, not a real agreement").hexdigest(),
            services=Service.values,
        )
        return tenant

    def _patients(self, tenant: Tenant) -> None:
        results = contact_upsert_many(
            tenant=tenant,
            actor=Actor.system("seed_demo"),
            inputs=list(synthetic_contacts(count=DEMO_PATIENTS, seed=DEMO_PATIENT_SEED)),
            source="seed_demo",
        )
        created = sum(result.created for result in results)
        self.stdout.write(f"synthetic patients: {created} created, {len(results) - created} already there")

    def _user(self, actor: Actor, tenant: Tenant, local: str, role: str) -> dict[str, str]:
        email = f"{local}@{DEMO_DOMAIN}"
        password = DEV_PASSWORD if settings.DEBUG else secrets.token_urlsafe(18)
        is_platform_admin = role == PLATFORM_ADMIN
        # Platform admins belong to no tenant: they see no PHI.
        _user, device = user_provision(
            actor=actor,
            email=email,
            password=password,
            tenant=None if is_platform_admin else tenant,
            role=None if is_platform_admin else role,
            platform_admin=is_platform_admin,
        )
        return {
            "role": role,
            "email": email,
            "password": password,
            "secret": base64.b32encode(device.bin_key).decode("ascii"),
            "uri": device.config_url,
        }

    def _logins_text(self, lines: list[dict[str, str]]) -> str:
        parts = [
            "HealthMail demo logins (synthetic accounts; set up each TOTP once in an authenticator app).",
            "",
        ]
        for line in lines:
            parts += [
                f"{line['role']}: {line['email']}",
                f"  password:    {line['password']}",
                f"  TOTP secret: {line['secret']}",
                f"  TOTP URI:    {line['uri']}",
                "",
            ]
        return "\n".join(parts)

    def _display(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
        except ValueError:
            return str(path)

"""`manage.py record_baa --tenant <slug> ... --document <file>`: record a signed BAA (audited).

Only the document's SHA-256 is kept; the file stays wherever the operator keeps signed contracts.
"""

import datetime
import hashlib
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.forms import parse_subcontractor_lines
from healthmail.tenants.models import Service, Tenant
from healthmail.tenants.services import baa_record


def _date(option: str, value: str | None) -> datetime.date | None:
    if value is None:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"--{option}: “{value}” is not a date in the form YYYY-MM-DD.") from error


def _services(value: str) -> list[str]:
    services = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [service for service in services if service not in Service.values]
    if unknown:
        raise CommandError(
            f"--services: unknown service {', '.join(unknown)}; choose from {', '.join(Service.values)}."
        )
    if not services:
        raise CommandError(f"--services: name at least one of {', '.join(Service.values)}.")
    return services


def _file_sha256(path: Path) -> str:
    if not path.is_file():
        raise CommandError(f"--document: no such file: {path}")
    digest = hashlib.sha256()
    with path.open("rb") as document:
        for block in iter(lambda: document.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


class Command(BaseCommand):
    help = "Record a signed Business Associate Agreement (or a renewal) for a tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's short name (slug).")
        parser.add_argument("--counterparty", required=True, help="The covered entity signing with us.")
        parser.add_argument("--signed", required=True, help="YYYY-MM-DD")
        parser.add_argument("--effective", required=True, help="YYYY-MM-DD")
        parser.add_argument("--expires", help="YYYY-MM-DD; omit for an agreement that runs until terminated.")
        parser.add_argument("--signatory", required=True)
        parser.add_argument("--title", default="", help="The signatory's title.")
        parser.add_argument(
            "--document", required=True, type=Path, help="The signed file; only its hash is kept."
        )
        parser.add_argument(
            "--services", required=True, help=f"Comma-separated, from: {', '.join(Service.values)}."
        )
        parser.add_argument("--breach-days", type=int, default=60, help="Breach notification days (1-60).")
        parser.add_argument(
            "--subcontractor",
            action="append",
            default=[],
            metavar="'NAME | SERVICE'",
            help="A subcontractor handling PHI under this BAA; repeat for several.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"--tenant: no tenant with the short name “{options['tenant']}”.")
        signed = _date("signed", options["signed"])
        effective = _date("effective", options["effective"])
        expires = _date("expires", options["expires"])
        if signed is None or effective is None:
            raise CommandError("--signed and --effective are required.")
        services = _services(options["services"])
        if not 1 <= options["breach_days"] <= 60:
            raise CommandError("--breach-days must be between 1 and 60.")
        try:
            subcontractors = parse_subcontractor_lines("\n".join(options["subcontractor"]))
        except ValidationError as error:
            raise CommandError(f"--subcontractor: {' '.join(error.messages)}") from error
        try:
            baa = baa_record(
                actor=Actor.system("manage.py"),
                tenant=tenant,
                counterparty=options["counterparty"],
                signed_on=signed,
                effective_on=effective,
                expires_on=expires,
                signatory_name=options["signatory"],
                signatory_title=options["title"],
                document_sha256=_file_sha256(options["document"]),
                services=services,
                breach_notification_days=options["breach_days"],
                subcontractors=subcontractors,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            f"Recorded BAA {baa.pk} for {tenant.slug}: {', '.join(baa.services)}, "
            f"effective {baa.effective_on}, document sha256 {baa.document_sha256}."
        )

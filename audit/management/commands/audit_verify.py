"""Recompute the audit hash chains and compare them with the signed checkpoints.

    manage.py audit_verify [--tenant SLUG] [--seal]
    manage.py audit_verify --export FILE     check an exported ZIP offline (no database needed)

Exit status 1 when any chain is broken; each broken chain names its first bad row and raises a
critical alert to the tenant's compliance officers (once per distinct break).
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit import chain
from audit.exports import verify_export
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify the tamper-evident audit trail (hash chains and signed checkpoints)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Tenant slug (default: every tenant and the platform chain).")
        parser.add_argument("--seal", action="store_true", help="Seal pending events first.")
        parser.add_argument("--export", type=Path, help="Verify an audit export ZIP instead of the database.")

    def handle(self, *args, tenant=None, seal=False, export=None, **options):
        if export is not None:
            self._verify_export(export)
            return
        if tenant:
            found = Tenant.objects.filter(slug=tenant).values_list("pk", flat=True).first()
            if found is None:
                raise CommandError(f"No tenant with slug {tenant!r}.")
            chain_ids = [found]
        else:
            chain_ids = list(chain.chain_ids())
        broken = 0
        for chain_id in chain_ids:
            if seal:
                while chain.seal_pending(chain_id):
                    pass
            report = chain.verification_record(chain_id, found_by="audit_verify")
            status = self.style.SUCCESS("ok") if report.ok else self.style.ERROR("BROKEN")
            pending = f", {report.unsealed} not yet sealed" if report.unsealed else ""
            self.stdout.write(f"{report.chain}: {status} ({report.rows} rows{pending})")
            for problem in report.problems:
                self.stdout.write(f"  first problem at {problem}")
            broken += not report.ok
        if broken:
            raise CommandError(f"{broken} audit chain(s) failed verification.", returncode=1)

    def _verify_export(self, path: Path) -> None:
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        problems = verify_export(path.read_bytes())
        if problems:
            for problem in problems:
                self.stdout.write(self.style.ERROR(f"  {problem}"))
            raise CommandError("The export does not verify.", returncode=1)
        self.stdout.write(
            self.style.SUCCESS(
                f"{path.name}: manifest signature, file hash and every row's chain link verify."
            )
        )

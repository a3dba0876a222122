"""Verify an evidence package or a destruction-certificate package offline (no database needed).

    manage.py verify_evidence FILE                    signature checked with the master key
    manage.py verify_evidence FILE --public-key HEX   anywhere: the operator's published Ed25519 key
    manage.py verify_evidence FILE --against-chain    on the platform: the audit slice's hashes are
                                                      those of the stored chain, which recomputes

Checks the manifest signature, every file's SHA-256 (a modified, missing or added file is named),
the audit slice's own chain (with the master key) and a certificate's manifest hash over the
destroyed record ids, and the audit slice's chain proof (each event's link, the signed checkpoint
covering them). Exit status 1 when anything does not verify.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from retention import packages


class Command(BaseCommand):
    help = "Verify an evidence export or destruction-certificate package offline."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--public-key", help="Hex Ed25519 public key published by the operator.")
        parser.add_argument(
            "--against-chain",
            action="store_true",
            help="Also match the audit slice against the stored audit chain (needs the database).",
        )

    def handle(self, *args, file: Path, public_key=None, against_chain=False, **options):
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        problems, manifest = packages.verify(file.read_bytes(), public_key=public_key)
        if against_chain and not problems:
            problems = packages.verify_against_chain(file.read_bytes())
        if problems:
            for problem in problems:
                self.stdout.write(self.style.ERROR(f"  {problem}"))
            raise CommandError(f"{file.name} does not verify.", returncode=1)
        package_id = manifest.get("package_id") or manifest.get("certificate_id")
        self.stdout.write(
            self.style.SUCCESS(
                f"{file.name}: {manifest.get('kind', 'package')} {package_id}"
                f" — signature and all {len(manifest['files'])} files verify."
            )
        )

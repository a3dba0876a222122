"""Verify an evidence package or a destruction-certificate package offline (no database needed).

    manage.py verify_evidence FILE                    signature checked with the master key
    manage.py verify_evidence FILE --public-key HEX   anywhere: the operator's published Ed25519 key

Checks the manifest signature, every file's SHA-256 (a modified, missing or added file is named),
the audit slice's own chain (with the master key) and a certificate's manifest hash over the
destroyed record ids. Exit status 1 when anything does not verify.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from retention import packages


class Command(BaseCommand):
    help = "Verify an evidence export or destruction-certificate package offline."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--public-key", help="Hex Ed25519 public key published by the operator.")

    def handle(self, *args, file: Path, public_key=None, **options):
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        problems, manifest = packages.verify(file.read_bytes(), public_key=public_key)
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

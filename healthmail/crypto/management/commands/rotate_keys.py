"""Rotate encryption keys while the system runs.

    manage.py rotate_keys [--tenant SLUG]   new data-key version per tenant, rows re-encrypted in batches
    manage.py rotate_keys --master          re-wrap tenant keys with the first key of HEALTHMAIL_MASTER_KEY
    manage.py rotate_keys --epochs          object keys to a new epoch key; older epoch keys destroyed
    manage.py rotate_keys --index           new index-key version; rows re-indexed from their values
                                            (phones, external ids, clinical and demographic tokens;
                                            lookups query both meanwhile); the older version retired,
                                            then destroyed; chained indexes (email, FHIR request ids,
                                            tags) re-keyed
    manage.py rotate_keys --status          per tenant: key versions, rows per version, usage, epoch age,
                                            damaged rows (nothing is changed)

Interrupt it at any time: the next run resumes (rows still on older versions are the work left).
A record that does not decrypt is skipped, named and alerted on; the rest is rotated, and the command
then exits with status 1 (`manage.py integrity_scan` lists every damaged record).
"""

from argparse import SUPPRESS as SUPPRESS_HELP
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.crypto import index_rotation
from healthmail.crypto.index_rotation import index_rotate
from healthmail.crypto.integrity import Damage
from healthmail.crypto.key_status import key_status
from healthmail.crypto.key_versions import data_keys_destroy_unused
from healthmail.crypto.objects import epochs_rotate
from healthmail.crypto.rotation import rotate_data_key, rotate_master_key
from healthmail.tenants.models import Tenant


class Command(BaseCommand):
    help = "Rotate tenant data keys (re-encrypting rows) or the master key (re-wrapping tenant keys)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Tenant slug (default: every tenant).")
        parser.add_argument(
            "--master", action="store_true", help="Re-wrap tenant keys with the current master key."
        )
        parser.add_argument(
            "--epochs",
            action="store_true",
            help="Re-wrap object keys under a new epoch key and destroy the older ones (shredding).",
        )
        parser.add_argument(
            "--index",
            action="store_true",
            help="Rotate the index key: re-index rows under a new version, then retire the old one.",
        )
        parser.add_argument(
            "--status",
            action="store_true",
            help="Report keys, rows per version, usage and damage; change nothing.",
        )
        parser.add_argument("--settle-seconds", type=float, default=None, help=SUPPRESS_HELP)

    def _progress(self, table: str, done: int, total: int) -> None:
        self.stdout.write(f"  {table}: {done}/{total} re-encrypted")

    def _damaged(self, damage: Damage) -> None:
        self.damaged.append(damage)
        self.stderr.write(f"  DAMAGED, skipped: {damage}")

    def handle(
        self,
        *args: Any,
        tenant: str | None = None,
        master: bool = False,
        epochs: bool = False,
        index: bool = False,
        settle_seconds: float | None = None,
        **options: Any,
    ) -> None:
        self.damaged: list[Damage] = []
        if options.get("status"):
            self._status(tenant)
            return
        if epochs:
            self._rotate_epochs(tenant)
        elif index:
            self._rotate_index(tenant, settle_seconds)
        else:
            self._rotate(tenant=tenant, master=master, settle_seconds=settle_seconds)
        if self.damaged:
            raise CommandError(
                f"{len(self.damaged)} damaged record(s) skipped (listed above; an alert names each): "
                "everything else was rotated. See manage.py integrity_scan."
            )

    def _tenants(self, slug: str | None) -> QuerySet[Tenant]:
        tenants = Tenant.objects.all()
        if slug:
            tenants = tenants.filter(slug=slug)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {slug!r}.")
        return tenants

    def _status(self, slug: str | None) -> None:
        for each in self._tenants(slug):
            status = key_status(each.pk)
            self.stdout.write(f"Tenant {each.slug}: tenant key {status.tenant_key}")
            for key in status.data_keys:
                due = "  ROTATION DUE" if key.rotation_due else ""
                self.stdout.write(
                    f"  data key v{key.version}: {key.rows} row(s), {key.encryptions} encryption(s){due}"
                )
            versions = ", ".join(f"v{v} {state}" for v, state in sorted(status.index_states.items()))
            reindexing = "; RE-INDEXING (lookups query both)" if status.reindexing else ""
            self.stdout.write(f"  index key: {versions or 'none yet'}{reindexing}")
            # Recomputed from the rows' own values (older versions destroyed once every row moved).
            self.stdout.write(f"  re-indexed from values: {', '.join(index_rotation.reindexer_names())}")
            # Chained indexes (email, FHIR request identifiers, tags: blind.py) are re-keyed in place.
            pending = any(state == "pending" for state in status.index_states.values())
            stage = "filling in next indexes" if pending else "swapping next indexes in"
            if status.reindexing or status.chained_unswapped:
                rows = ", ".join(f"{n} in {name}" for name, n in sorted(status.chained_unswapped.items()))
                self.stdout.write(
                    f"  chained indexes: {stage.upper()}; rows with a next index: {rows or 'none'}"
                )
            else:
                self.stdout.write("  chained indexes: none in flight")
            if status.chain_versions:
                chain = ", ".join(f"v{v}" for v in status.chain_versions)
                self.stdout.write(f"  chain keys: {chain} (kept: chained indexes are computed through them)")
            if status.legacy_wrapped:
                self.stdout.write(
                    f"  {status.legacy_wrapped} key(s) wrapped by the master key alone: rotate_keys --master"
                )
            age = (
                "no epoch yet"
                if status.epoch_age_seconds is None
                else f"{status.epoch_age_seconds / 3600:.1f} h"
            )
            self.stdout.write(
                f"  epoch age {age}; {status.epochs_destroyed} epoch key(s) destroyed; "
                f"{status.object_keys} object key(s) (per-contact keys included)"
            )
            for epoch in status.epochs:
                per_table = ", ".join(
                    f"{count} in {table}" for table, count in sorted(epoch.row_keys.items())
                )
                due = "  ROTATION DUE" if epoch.rotation_due else ""
                self.stdout.write(
                    f"  epoch key {str(epoch.epoch_id)[:8]} ({'current' if epoch.current else 'retired'}, "
                    f"{epoch.age_seconds / 3600:.1f} h): wraps {epoch.object_keys} object key(s)"
                    f"{f' (per-row keys: {per_table})' if per_table else ''}{due}"
                )
            self.stdout.write(f"  damaged rows: {len(status.damaged)}")
            for line in status.damaged:
                self.stdout.write(f"    {line}")

    def _rotate_epochs(self, tenant: str | None) -> None:
        for each in self._tenants(tenant):
            result = epochs_rotate(each.pk)
            for damage in result.damaged:
                self._damaged(damage)
            self.stdout.write(
                f"Tenant {each.slug}: {result.rewrapped} object keys under the new epoch; "
                f"{len(result.destroyed)} older epoch key(s) destroyed."
            )

    def _rotate_index(self, tenant: str | None, settle_seconds: float | None) -> None:
        actor = Actor.system("manage.py rotate_keys")
        for each in self._tenants(tenant):
            self.stdout.write(f"Tenant {each.slug}:")
            result = index_rotate(
                each.pk,
                settle_seconds=settle_seconds,
                progress=lambda name, read, changed: self.stdout.write(
                    f"  {name}: {read} read, {changed} re-indexed"
                ),
            )
            for damage in result.damaged:
                self._damaged(damage)
            audit.record(
                actor=actor,
                action="crypto.rotate_index_key",
                tenant=each,
                target=each,
                details={
                    "version": result.version,
                    "reindexed": result.changed,
                    "chained_filled": result.filled,
                    "chained_rekeyed": result.rekeyed,
                    "destroyed": result.destroyed,
                    "damaged": len(result.damaged),
                },
            )
            kept = "older version kept (damaged rows)" if result.damaged else "older version retired"
            destroyed = f"; destroyed v{', v'.join(map(str, result.destroyed))}" if result.destroyed else ""
            self.stdout.write(
                self.style.SUCCESS(
                    f"  index key now v{result.version}: {result.changed} row(s) re-indexed; "
                    f"{result.filled} chained index(es) filled in, {result.rekeyed} swapped in; "
                    f"{kept}{destroyed}."
                )
            )

    def _rotate(self, *, tenant: str | None, master: bool, settle_seconds: float | None) -> None:
        tenants = self._tenants(tenant)
        actor = Actor.system("manage.py rotate_keys")
        if master:
            count = rotate_master_key(
                (t.pk for t in tenants), progress=self._progress, on_damaged=self._damaged
            )
            audit.record(actor=actor, action="crypto.rotate_master_key", details={"rewrapped": count})
            self.stdout.write(self.style.SUCCESS(f"Re-wrapped {count} tenant keys."))
            return
        for each in tenants:
            self.stdout.write(f"Tenant {each.slug}:")
            version = rotate_data_key(
                each.pk, progress=self._progress, settle_seconds=settle_seconds, on_damaged=self._damaged
            )
            audit.record(
                actor=actor,
                action="crypto.rotate_data_key",
                tenant=each,
                target=each,
                details={"version": version},
            )
            skipped = sum(1 for damage in self.damaged if damage.tenant_id == each.pk)
            left = f"; {skipped} damaged row(s) skipped" if skipped else "; every row re-encrypted"
            self.stdout.write(self.style.SUCCESS(f"  data key now v{version}{left}."))
            if not skipped:  # the older versions' last users are gone: verified by query, then deleted
                destroyed = data_keys_destroy_unused(each.pk)
                if destroyed:
                    audit.record(
                        actor=actor,
                        action="crypto.destroy_data_keys",
                        tenant=each,
                        target=each,
                        details={"versions": destroyed},
                    )
                    self.stdout.write(f"  destroyed data key version(s) no value uses: {destroyed}")

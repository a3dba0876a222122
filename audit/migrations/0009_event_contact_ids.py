"""Audit events index every contact they concern (`contact_ids`, GIN), so "every access to this
patient" is one indexed query. The append-only guard learns the new column: sealing may not change it.

Events written before this migration keep an empty array (the chain hashes an empty list as it did
before the column existed, so old rows still verify; an append-only row cannot be back-filled). The
patient filter does not find them: search them by their object (target) instead."""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
from django.db import migrations, models

GUARD = """
CREATE OR REPLACE FUNCTION audit_event_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE'
     AND OLD.seq IS NULL AND OLD.hash = '' AND OLD.sealed_at IS NULL
     AND NEW.seq IS NOT NULL AND NEW.hash <> '' AND NEW.sealed_at IS NOT NULL
     AND (NEW.id, NEW.tenant_id, NEW.occurred_at, NEW.actor_type, NEW.actor_id, NEW.action,
          NEW.target_type, NEW.target_id, NEW.outcome, NEW.reason, NEW.details, NEW.request_id,
          NEW.ip_address, NEW.contact_ids)
         IS NOT DISTINCT FROM
         (OLD.id, OLD.tenant_id, OLD.occurred_at, OLD.actor_type, OLD.actor_id, OLD.action,
          OLD.target_type, OLD.target_id, OLD.outcome, OLD.reason, OLD.details, OLD.request_id,
          OLD.ip_address, OLD.contact_ids)
  THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
"""

OLD_GUARD = """
CREATE OR REPLACE FUNCTION audit_event_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE'
     AND OLD.seq IS NULL AND OLD.hash = '' AND OLD.sealed_at IS NULL
     AND NEW.seq IS NOT NULL AND NEW.hash <> '' AND NEW.sealed_at IS NOT NULL
     AND (NEW.id, NEW.tenant_id, NEW.occurred_at, NEW.actor_type, NEW.actor_id, NEW.action,
          NEW.target_type, NEW.target_id, NEW.outcome, NEW.reason, NEW.details, NEW.request_id,
          NEW.ip_address)
         IS NOT DISTINCT FROM
         (OLD.id, OLD.tenant_id, OLD.occurred_at, OLD.actor_type, OLD.actor_id, OLD.action,
          OLD.target_type, OLD.target_id, OLD.outcome, OLD.reason, OLD.details, OLD.request_id,
          OLD.ip_address)
  THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_row_level_security_policy")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="contact_ids",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.UUIDField(), blank=True, default=list, size=None
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=django.contrib.postgres.indexes.GinIndex(fields=["contact_ids"], name="audit_contact_ids"),
        ),
        # Raw writers that name no contacts (and the sealer's tests) get an empty list, never NULL.
        migrations.RunSQL(
            "ALTER TABLE audit_auditevent ALTER COLUMN contact_ids SET DEFAULT '{}'",
            "ALTER TABLE audit_auditevent ALTER COLUMN contact_ids DROP DEFAULT",
        ),
        migrations.RunSQL(GUARD, OLD_GUARD),
    ]

"""Audit events are append-only. Row triggers refuse UPDATE and DELETE, a statement trigger refuses
TRUNCATE (row triggers do not fire for it). The one allowed change is sealing: setting seq, hash and
sealed_at once, on a row that has none, with every other column unchanged."""

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity

GUARD = """
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

CREATE OR REPLACE FUNCTION audit_event_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
  FOR EACH ROW EXECUTE FUNCTION audit_event_guard();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_auditevent
  FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse();
"""

UNGUARD = """
DROP TRIGGER audit_event_no_truncate ON audit_auditevent;
DROP TRIGGER audit_event_append_only ON audit_auditevent;
DROP FUNCTION audit_event_guard();
DROP FUNCTION audit_event_refuse();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chain")]

    operations = [
        migrations.RunSQL(GUARD, UNGUARD),
        EnableRowLevelSecurity("ChainHead"),
        migrations.RunSQL(
            """
            CREATE POLICY platform_chain ON audit_chainhead
              USING (tenant_id IS NULL AND current_setting('app.platform', true) = 'on')
              WITH CHECK (tenant_id IS NULL AND current_setting('app.platform', true) = 'on');
            """,
            "DROP POLICY platform_chain ON audit_chainhead;",
        ),
    ]

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial"), ("tenants", "0002_row_level_security")]

    operations = [
        EnableRowLevelSecurity("AuditEvent"),
        # Platform-level events (no tenant) may be written by anyone and read only by platform admins.
        migrations.RunSQL(
            """
            CREATE POLICY platform_events ON audit_auditevent
              USING (tenant_id IS NULL AND current_setting('app.platform', true) = 'on')
              WITH CHECK (tenant_id IS NULL);
            """,
            "DROP POLICY platform_events ON audit_auditevent;",
        ),
    ]

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_alerts_break_glass")]

    operations = [
        EnableRowLevelSecurity("Alert"),
        EnableRowLevelSecurity("AlertScan"),
        EnableRowLevelSecurity("BreakGlassGrant"),
        EnableRowLevelSecurity("ChainVerification"),
        migrations.RunSQL(
            """
            CREATE POLICY platform_verifications ON audit_chainverification
              USING (tenant_id IS NULL AND current_setting('app.platform', true) = 'on')
              WITH CHECK (tenant_id IS NULL AND current_setting('app.platform', true) = 'on');
            """,
            "DROP POLICY platform_verifications ON audit_chainverification;",
        ),
    ]

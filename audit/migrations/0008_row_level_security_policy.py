from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_audit_policy")]

    operations = [EnableRowLevelSecurity("AuditPolicy")]

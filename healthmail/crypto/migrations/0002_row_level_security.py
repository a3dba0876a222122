from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("crypto", "0001_initial"), ("tenants", "0002_row_level_security")]

    operations = [EnableRowLevelSecurity("TenantKey"), EnableRowLevelSecurity("ObjectKey")]

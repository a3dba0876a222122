from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("incidents", "0003_incidents_access_requests")]

    operations = [EnableRowLevelSecurity("AccessRequest")]

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("contacts", "0001_initial"), ("tenants", "0002_row_level_security")]

    operations = [
        EnableRowLevelSecurity("Contact"),
        EnableRowLevelSecurity("ContactExternalId"),
        EnableRowLevelSecurity("CustomField"),
    ]

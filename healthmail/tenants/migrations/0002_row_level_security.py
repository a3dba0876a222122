from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [
        EnableRowLevelSecurity("BusinessAssociateAgreement"),
        EnableRowLevelSecurity("Subcontractor"),
    ]

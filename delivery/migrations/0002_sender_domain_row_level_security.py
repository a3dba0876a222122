from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("delivery", "0001_tls_policy_sender_domains")]

    operations = [
        EnableRowLevelSecurity("SenderDomain"),
        EnableRowLevelSecurity("DkimKey"),
    ]

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("delivery", "0003_outbox")]

    operations = [EnableRowLevelSecurity("Message"), EnableRowLevelSecurity("MessageAttempt")]

"""Row-level security on every incidents table (tests/isolation checks all TenantOwnedModels)."""

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_incidents_breach_notification")]

    operations = [
        EnableRowLevelSecurity("Incident"),
        EnableRowLevelSecurity("Evidence"),
        EnableRowLevelSecurity("AffectedIndividual"),
        EnableRowLevelSecurity("Notice"),
        EnableRowLevelSecurity("ClockAlert"),
    ]

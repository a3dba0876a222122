"""Row-level security on every journeys table."""

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("journeys", "0001_journeys_positions_events")]

    operations = [
        EnableRowLevelSecurity("Journey"),
        EnableRowLevelSecurity("JourneyVersion"),
        EnableRowLevelSecurity("Position"),
        EnableRowLevelSecurity("StepLog"),
        EnableRowLevelSecurity("JourneyEvent"),
    ]

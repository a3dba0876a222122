from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_initial"), ("tenants", "0002_row_level_security")]

    operations = [
        # A person's own memberships are readable across tenants (sign-in, tenant switcher).
        EnableRowLevelSecurity(
            "Membership", extra_read="user_id = NULLIF(current_setting('app.user_id', true), '')::uuid"
        ),
        # An API key is found by its prefix before its tenant is known.
        EnableRowLevelSecurity(
            "ApiKey", extra_read="prefix = NULLIF(current_setting('app.api_key_prefix', true), '')"
        ),
    ]

"""The outbox's single-column tenant_id index goes: the composite indexes that start with tenant_id
serve every query by tenant, and a claim and an outcome (non-HOT updates) no longer write an entry to
it (issue 22)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0015_message_hot_handoff"),
    ]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="tenant",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="tenants.tenant",
            ),
        ),
    ]

import uuid

import django.db.models.deletion
from django.db import migrations, models

import healthmail.crypto.fields
from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    initial = True
    dependencies = [("tenants", "0002_row_level_security")]

    operations = [
        migrations.CreateModel(
            name="SecretNote",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("body", healthmail.crypto.fields.EncryptedTextField(phi_class="identifier")),
                ("clinical", healthmail.crypto.fields.EncryptedJSONField(blank=True, null=True, phi_class="clinical")),
                ("label", models.CharField(blank=True, max_length=50)),
                ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                             to="tenants.tenant")),
            ],
            options={"abstract": False},
        ),
        EnableRowLevelSecurity("SecretNote"),
    ]

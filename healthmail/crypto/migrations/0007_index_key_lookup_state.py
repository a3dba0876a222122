from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crypto", "0006_data_key_usage")]

    operations = [
        migrations.AddField(
            model_name="tenantkey",
            name="lookup_state",
            field=models.CharField(
                choices=[
                    ("pending", "Looked up, not yet written (an index-key rotation is starting)"),
                    ("active", "Written and looked up"),
                    ("retired", "Neither (re-indexing done); kept only where index_rotation.py says"),
                ],
                default="active",
                help_text="Index keys only (blind.py): how lookups and writes use this version.",
                max_length=8,
            ),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('delivery', '0013_message_source_delivered_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='workerheartbeat',
            name='suspected_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]

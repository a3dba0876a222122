from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('delivery', '0012_worker_heartbeat'),
    ]

    operations = [
        migrations.AddField(
            model_name='workerheartbeat',
            name='suspected_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]

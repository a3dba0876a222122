"""The segment-join trigger (members, queued checks) and the hourly date trigger in each contact's
time zone (the daily compare-and-set becomes the segment reconcile's)."""

import django.db.models.deletion
from django.db import migrations, models

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):

    dependencies = [
        ('contacts', '0007_import_accepted_count'),
        ('journeys', '0003_jeng_steplog_lean'),
        ('tenants', '0003_disclosure_policy'),
    ]

    operations = [
        migrations.CreateModel(
            name='SegmentCheck',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('queued_at', models.DateTimeField()),
                ('contact', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='contacts.contact')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('tenant', 'contact'), name='journey_segment_check_unique')],
            },
        ),
        migrations.CreateModel(
            name='SegmentMember',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('joined_at', models.DateTimeField()),
                ('contact', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='contacts.contact')),
                ('journey', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='journeys.journey')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('tenant', 'journey', 'contact'), name='journey_segment_member_unique')],
            },
        ),
        migrations.RenameField("journey", "date_entered_on", "reconciled_on"),
        migrations.AddField(
            model_name="journey",
            name="date_checked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        EnableRowLevelSecurity("SegmentMember"),
        EnableRowLevelSecurity("SegmentCheck"),
    ]

"""Import metadata holds no cell value in clear: the header row is sealed with the upload's key, and
row errors name the column by position. A file without a header row had put a patient's email, name
and birth date into `headers` (and into row errors' `column`), where they outlived the shredded upload.

Existing jobs keep their column count and their errors' positions; their header names are dropped (a
job still waiting for its mapping shows "Column N"). The owner updates the rows with FORCE lifted for
the statement's transaction, since the tables' policies would otherwise hide every row from it.
"""

from django.db import migrations, models

TABLES = ("contacts_importjob", "contacts_importrowerror")

COPY = [
    """
UPDATE contacts_importjob SET column_count = jsonb_array_length(headers)
 WHERE jsonb_typeof(headers) = 'array'
""",
    """
UPDATE contacts_importrowerror AS e SET column_index = h.position - 1
  FROM contacts_importjob AS j,
       LATERAL jsonb_array_elements_text(
           CASE WHEN jsonb_typeof(j.headers) = 'array' THEN j.headers ELSE '[]'::jsonb END
       ) WITH ORDINALITY AS h(name, position)
 WHERE j.id = e.job_id AND h.name = e."column" AND e."column" <> ''
""",
]


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0004_import_slices"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="column_count",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="importjob",
            name="headers_sealed",
            field=models.BinaryField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="importrowerror",
            name="column_index",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.RunSQL(
            [f"ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY" for t in TABLES]
            + COPY
            + [f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY" for t in TABLES],
            migrations.RunSQL.noop,
        ),
        migrations.RemoveField(model_name="importjob", name="headers"),
        migrations.RemoveField(model_name="importrowerror", name="column"),
    ]

"""The outbox's content-key index holds only the rows that have a key. Campaign rows are rendered at
send time and have none, and each of their row versions (the insert, the claim, the outcome: the two
updates are not HOT) wrote a NULL entry to it (issue 22). A key's deletion or a shred looks rows up by
`content_key_id = k`, which implies NOT NULL: the partial index serves it. The new index is built
(concurrently: the outbox keeps taking writes) before the old one is dropped."""

import django.db.models.deletion
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("crypto", "0008_chain_keys"),
        ("delivery", "0017_message_address_index_next"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(
                condition=models.Q(("content_key__isnull", False)),
                fields=["content_key"],
                name="message_content_key",
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="content_key",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="crypto.objectkey",
            ),
        ),
    ]

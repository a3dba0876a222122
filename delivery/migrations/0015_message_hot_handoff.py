"""The hand-off mark becomes a HOT update (no index entries, the new row version on the same page):

- the claimed-rows index no longer holds lease_until, which the hand-off renews;
- the outbox keeps half of each page free (fillfactor 50) for the claim's, the hand-off's and the
  outcome's row versions, so they stay on the row's page;
- the LIKE index Django adds for the unique message_id goes: no query matches Message-IDs by pattern,
  and every non-HOT row version paid an entry in it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0014_worker_heartbeat_suspected"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="message", name="message_sending_lease"),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("state", "sending")), fields=["tenant"], name="message_sending"
            ),
        ),
        migrations.RunSQL(
            "ALTER TABLE delivery_message SET (fillfactor = 50)",
            "ALTER TABLE delivery_message RESET (fillfactor)",
        ),
        migrations.RunSQL(
            "DROP INDEX IF EXISTS delivery_message_message_id_8f27572f_like",
            "CREATE INDEX IF NOT EXISTS delivery_message_message_id_8f27572f_like"
            " ON delivery_message (message_id varchar_pattern_ops)",
        ),
    ]

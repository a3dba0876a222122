"""journeys_log_id(): the step log's time-ordered ids (engine.py). PostgreSQL 18 has uuidv7()
(monotonic within a session); older servers an operator may point DATABASE_URL at get the same
layout (48-bit Unix milliseconds, version 7, random rest) without the within-millisecond order."""

from django.db import migrations

CREATE = """
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 180000 THEN
    EXECUTE 'CREATE OR REPLACE FUNCTION journeys_log_id() RETURNS uuid
             LANGUAGE sql VOLATILE PARALLEL SAFE AS ''SELECT uuidv7()''';
  ELSE
    EXECUTE 'CREATE OR REPLACE FUNCTION journeys_log_id() RETURNS uuid
             LANGUAGE sql VOLATILE PARALLEL SAFE AS $f$
               SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
                 substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                 FROM 1 FOR 6), 52, 1), 53, 1), ''hex'')::uuid
             $f$';
  END IF;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("journeys", "0006_steplog_position_fewer_indexes")]

    operations = [migrations.RunSQL(CREATE, "DROP FUNCTION IF EXISTS journeys_log_id()")]

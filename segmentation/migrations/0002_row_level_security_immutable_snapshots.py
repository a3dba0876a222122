"""Row-level security on every segmentation table; snapshots and their members are immutable:
row triggers refuse UPDATE and DELETE, a statement trigger refuses TRUNCATE. The one exception:
a snapshot's member_count goes from NULL to its value once, in the transaction that wrote members.

Retention: a disposal run that must remove old snapshots needs its own guarded path (a SECURITY
DEFINER function checking the policy), not a dropped trigger."""

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity

IMMUTABLE_TABLES = ["segmentation_segmentsnapshotmember"]

SEAL_FUNCTION = """
CREATE OR REPLACE FUNCTION segmentation_snapshot_seal_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.member_count IS NULL AND NEW.member_count IS NOT NULL
     AND (to_jsonb(NEW) - 'member_count') = (to_jsonb(OLD) - 'member_count') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'segment snapshots are immutable (% on % refused)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER segmentation_segmentsnapshot_sealed BEFORE UPDATE OR DELETE ON segmentation_segmentsnapshot
  FOR EACH ROW EXECUTE FUNCTION segmentation_snapshot_seal_once();
CREATE TRIGGER segmentation_segmentsnapshot_no_truncate BEFORE TRUNCATE ON segmentation_segmentsnapshot
  FOR EACH STATEMENT EXECUTE FUNCTION segmentation_snapshot_immutable();
"""

FUNCTION = """
CREATE OR REPLACE FUNCTION segmentation_snapshot_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'segment snapshots are immutable (% on % refused)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
"""


def _guard(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}
  FOR EACH ROW EXECUTE FUNCTION segmentation_snapshot_immutable();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION segmentation_snapshot_immutable();
"""


def _unguard(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
DROP TRIGGER IF EXISTS {table}_immutable ON {table};
"""


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0001_segments_and_snapshots")]

    operations = [
        EnableRowLevelSecurity("Segment"),
        EnableRowLevelSecurity("SegmentSnapshot"),
        EnableRowLevelSecurity("SegmentSnapshotMember"),
        migrations.RunSQL(
            FUNCTION + "".join(_guard(table) for table in IMMUTABLE_TABLES) + SEAL_FUNCTION,
            "".join(_unguard(table) for table in IMMUTABLE_TABLES)
            + "DROP TRIGGER IF EXISTS segmentation_segmentsnapshot_no_truncate ON segmentation_segmentsnapshot;"
            + "DROP TRIGGER IF EXISTS segmentation_segmentsnapshot_sealed ON segmentation_segmentsnapshot;"
            + "DROP FUNCTION IF EXISTS segmentation_snapshot_seal_once();"
            + "DROP FUNCTION IF EXISTS segmentation_snapshot_immutable();",
        ),
    ]

"""Row-level security on every consent table, and append-only history: row triggers refuse UPDATE
and DELETE, a statement trigger refuses TRUNCATE (row triggers do not fire for it).

Retention: consent evidence must be kept at least six years (45 CFR 164.316(b)(2), 164.508(b)(6)).
If a disposal run must ever remove rows past retention, give it its own path (e.g. a SECURITY
DEFINER function that checks the retention policy) rather than dropping these triggers."""

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity

APPEND_ONLY_TABLES = [
    "consent_consentevent",
    "consent_preferencechange",
    "consent_authorizationevent",
    "consent_waiverevent",
    "consent_consenttext",
    "consent_authorizationtext",
]

FUNCTION = """
CREATE OR REPLACE FUNCTION consent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'consent history is append-only (% on % refused)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
"""


def _guard(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
  FOR EACH ROW EXECUTE FUNCTION consent_append_only();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION consent_append_only();
"""


def _unguard(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
DROP TRIGGER IF EXISTS {table}_append_only ON {table};
"""


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_consent_authorizations_suppression")]

    operations = [
        EnableRowLevelSecurity("Topic"),
        EnableRowLevelSecurity("ConsentText"),
        EnableRowLevelSecurity("ConsentEvent"),
        EnableRowLevelSecurity("ConsentState"),
        EnableRowLevelSecurity("ContactPreference"),
        EnableRowLevelSecurity("PreferenceChange"),
        EnableRowLevelSecurity("AuthorizationText"),
        EnableRowLevelSecurity("Authorization"),
        EnableRowLevelSecurity("AuthorizationEvent"),
        EnableRowLevelSecurity("UnencryptedEmailWaiver"),
        EnableRowLevelSecurity("WaiverEvent"),
        EnableRowLevelSecurity("Suppression"),
        EnableRowLevelSecurity("ConsentSettings"),
        migrations.RunSQL(
            FUNCTION + "".join(_guard(t) for t in APPEND_ONLY_TABLES),
            "".join(_unguard(t) for t in APPEND_ONLY_TABLES) + "DROP FUNCTION IF EXISTS consent_append_only();",
        ),
    ]

"""Row-level security on every campaigns table; frozen template versions cannot change (a row
trigger refuses UPDATE and DELETE, a statement trigger TRUNCATE): what reviewers approved is what
was sent."""

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity

FROZEN = """
CREATE OR REPLACE FUNCTION campaigns_version_frozen() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'template versions are frozen (% on % refused)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER campaigns_templateversion_frozen BEFORE UPDATE OR DELETE ON campaigns_templateversion
  FOR EACH ROW EXECUTE FUNCTION campaigns_version_frozen();
CREATE TRIGGER campaigns_templateversion_no_truncate BEFORE TRUNCATE ON campaigns_templateversion
  FOR EACH STATEMENT EXECUTE FUNCTION campaigns_version_frozen();
"""
UNFROZEN = """
DROP TRIGGER IF EXISTS campaigns_templateversion_no_truncate ON campaigns_templateversion;
DROP TRIGGER IF EXISTS campaigns_templateversion_frozen ON campaigns_templateversion;
DROP FUNCTION IF EXISTS campaigns_version_frozen();
"""


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_templates_campaigns_approvals")]

    operations = [
        EnableRowLevelSecurity("Branding"),
        EnableRowLevelSecurity("ContentBlock"),
        EnableRowLevelSecurity("Template"),
        EnableRowLevelSecurity("TemplateContent"),
        EnableRowLevelSecurity("TemplateVersion"),
        EnableRowLevelSecurity("Campaign"),
        EnableRowLevelSecurity("CampaignVariant"),
        EnableRowLevelSecurity("CampaignApproval"),
        EnableRowLevelSecurity("CampaignTransition"),
        EnableRowLevelSecurity("CampaignExclusion"),
        migrations.RunSQL(FROZEN, UNFROZEN),
    ]

"""Row-level security on every retention table (tests/isolation checks all TenantOwnedModels)."""

from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("retention", "0001_retention_policies_holds_disposal_archive")]

    operations = [
        EnableRowLevelSecurity("RetentionPolicy"),
        EnableRowLevelSecurity("LegalHold"),
        EnableRowLevelSecurity("HoldCustodian"),
        EnableRowLevelSecurity("DisposalRun"),
        EnableRowLevelSecurity("DisposalCandidate"),
        EnableRowLevelSecurity("DestructionCertificate"),
        EnableRowLevelSecurity("RetentionException"),
        EnableRowLevelSecurity("ArchivedRecord"),
        EnableRowLevelSecurity("EvidenceExport"),
    ]

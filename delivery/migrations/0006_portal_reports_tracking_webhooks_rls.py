from django.db import migrations

from healthmail.tenants.rls import EnableRowLevelSecurity


class Migration(migrations.Migration):
    dependencies = [("delivery", "0005_portal_reports_tracking_webhooks")]

    operations = [
        EnableRowLevelSecurity("PortalMessage"),
        EnableRowLevelSecurity("PortalLink"),
        EnableRowLevelSecurity("PortalCode"),
        EnableRowLevelSecurity("PortalReply"),
        EnableRowLevelSecurity("DeliveryReport"),
        EnableRowLevelSecurity("TrackedUrl"),
        EnableRowLevelSecurity("EngagementEvent"),
        EnableRowLevelSecurity("WebhookEndpoint"),
        EnableRowLevelSecurity("WebhookDelivery"),
    ]

from django.urls import path

from . import api, campaign_api, template_version_api, transactional_api

urlpatterns = [
    path("templates", api.TemplateCollection.as_view(), name="api-templates"),
    path("templates/<uuid:template_id>", api.TemplateItem.as_view(), name="api-template"),
    path(
        "templates/<uuid:template_id>/languages/<str:language>",
        api.TemplateLanguageItem.as_view(),
        name="api-template-language",
    ),
    path(
        "templates/<uuid:template_id>/versions",
        template_version_api.TemplateVersionCollection.as_view(),
        name="api-template-versions",
    ),
    path(
        "templates/<uuid:template_id>/preview",
        template_version_api.TemplatePreview.as_view(),
        name="api-template-preview",
    ),
    path(
        "template-versions/<uuid:version_id>",
        template_version_api.TemplateVersionItem.as_view(),
        name="api-template-version",
    ),
    path(
        "template-versions/<uuid:version_id>/preview",
        template_version_api.TemplateVersionPreview.as_view(),
        name="api-template-version-preview",
    ),
    path("campaigns", campaign_api.CampaignCollection.as_view(), name="api-campaigns"),
    path("campaigns/<uuid:campaign_id>", campaign_api.CampaignItem.as_view(), name="api-campaign"),
    path(
        "campaigns/<uuid:campaign_id>/submit",
        campaign_api.CampaignSubmit.as_view(),
        name="api-campaign-submit",
    ),
    path(
        "campaigns/<uuid:campaign_id>/withdraw",
        campaign_api.CampaignWithdraw.as_view(),
        name="api-campaign-withdraw",
    ),
    path(
        "campaigns/<uuid:campaign_id>/schedule",
        campaign_api.CampaignSchedule.as_view(),
        name="api-campaign-schedule",
    ),
    path(
        "campaigns/<uuid:campaign_id>/pause", campaign_api.CampaignPause.as_view(), name="api-campaign-pause"
    ),
    path(
        "campaigns/<uuid:campaign_id>/resume",
        campaign_api.CampaignResume.as_view(),
        name="api-campaign-resume",
    ),
    path(
        "campaigns/<uuid:campaign_id>/unschedule",
        campaign_api.CampaignUnschedule.as_view(),
        name="api-campaign-unschedule",
    ),
    path(
        "campaigns/<uuid:campaign_id>/cancel",
        campaign_api.CampaignCancel.as_view(),
        name="api-campaign-cancel",
    ),
    path(
        "campaigns/<uuid:campaign_id>/report",
        campaign_api.CampaignReport.as_view(),
        name="api-campaign-report",
    ),
    path("messages", transactional_api.MessageCollection.as_view(), name="api-messages"),
    path("messages/batch", transactional_api.MessageBatch.as_view(), name="api-messages-batch"),
    path("messages/<uuid:message_id>", transactional_api.MessageItem.as_view(), name="api-message"),
]

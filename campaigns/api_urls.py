from django.urls import path

from . import api, transactional_api

urlpatterns = [
    path("templates", api.TemplateCollection.as_view(), name="api-templates"),
    path("templates/<uuid:template_id>", api.TemplateItem.as_view(), name="api-template"),
    path("campaigns", api.CampaignCollection.as_view(), name="api-campaigns"),
    path("campaigns/<uuid:campaign_id>", api.CampaignItem.as_view(), name="api-campaign"),
    path("messages", transactional_api.MessageCollection.as_view(), name="api-messages"),
    path("messages/batch", transactional_api.MessageBatch.as_view(), name="api-messages-batch"),
    path("messages/<uuid:message_id>", transactional_api.MessageItem.as_view(), name="api-message"),
]

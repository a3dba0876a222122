from django.urls import path

from . import transactional_api

urlpatterns = [
    path("messages", transactional_api.MessageCollection.as_view(), name="api-messages"),
    path("messages/batch", transactional_api.MessageBatch.as_view(), name="api-messages-batch"),
    path("messages/<uuid:message_id>", transactional_api.MessageItem.as_view(), name="api-message"),
]

"""Webhook API routes, included under /api/v1/ by healthmail/api/urls.py."""

from django.urls import path

from . import api

urlpatterns = [
    path("webhooks", api.EndpointCollection.as_view(), name="api-webhooks"),
    path("webhooks/<uuid:endpoint_id>", api.EndpointItem.as_view(), name="api-webhook"),
    path("webhooks/<uuid:endpoint_id>/ping", api.EndpointPing.as_view(), name="api-webhook-ping"),
    path(
        "webhooks/<uuid:endpoint_id>/rotate-secret",
        api.EndpointRotateSecret.as_view(),
        name="api-webhook-rotate-secret",
    ),
    path(
        "webhook-deliveries/<uuid:delivery_id>/redeliver",
        api.DeliveryRedeliver.as_view(),
        name="api-webhook-redeliver",
    ),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries",
        api.EndpointDeliveries.as_view(),
        name="api-webhook-deliveries",
    ),
]

"""Consent API routes, included under /api/v1/ by healthmail/api/urls.py."""

from django.urls import path

from . import api

urlpatterns = [
    path("consent/events", api.ConsentEventCreate.as_view(), name="api-consent-event-create"),
    path("consent/waivers", api.WaiverCreate.as_view(), name="api-consent-waiver-create"),
    path("suppressions", api.SuppressionCreate.as_view(), name="api-suppression-create"),
]

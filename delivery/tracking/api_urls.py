"""Engagement events API route, included under /api/v1/ by healthmail/api/urls.py (by name: the
foundation never imports a domain app)."""

from django.urls import path

from .events_api import EventCollection

urlpatterns = [
    path("events", EventCollection.as_view(), name="api-events"),
]

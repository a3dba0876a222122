"""Consent API routes, included under /api/v1/ by healthmail/api/urls.py."""

from django.urls import path

from . import api, authorizations_api

urlpatterns = [
    path("consent/events", api.ConsentEventCreate.as_view(), name="api-consent-event-create"),
    path("consent/waivers", api.WaiverCreate.as_view(), name="api-consent-waiver-create"),
    path("suppressions", api.SuppressionCreate.as_view(), name="api-suppression-create"),
    path(
        "suppressions/<uuid:suppression_id>/remove",
        api.SuppressionRemove.as_view(),
        name="api-suppression-remove",
    ),
    path("contacts/<uuid:contact_id>/consent", api.ContactConsent.as_view(), name="api-contact-consent"),
    path("authorizations", authorizations_api.AuthorizationCollection.as_view(), name="api-authorizations"),
    path(
        "authorizations/<uuid:authorization_id>",
        authorizations_api.AuthorizationItem.as_view(),
        name="api-authorization",
    ),
    path(
        "authorizations/<uuid:authorization_id>/revoke",
        authorizations_api.AuthorizationRevoke.as_view(),
        name="api-authorization-revoke",
    ),
    path(
        "authorizations/<uuid:authorization_id>/end-event",
        authorizations_api.AuthorizationEndEvent.as_view(),
        name="api-authorization-end-event",
    ),
    path(
        "contacts/<uuid:contact_id>/authorizations",
        authorizations_api.ContactAuthorizations.as_view(),
        name="api-contact-authorizations",
    ),
]

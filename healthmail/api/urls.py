from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from . import oauth, views
from .errors import api_not_found

urlpatterns = [
    path(
        "schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"
    ),
    path("docs/", views.ApiDocs.as_view(), name="api-docs"),
    path("oauth/token", oauth.token, name="smart-token"),
    path("fhir/r4/", include("fhir_api.urls")),
    path("v1/me", views.WhoAmI.as_view(), name="api-me"),
    path("v1/signing-keys", views.SigningKeys.as_view(), name="api-signing-keys"),
    path("v1/", include("contacts.api_urls")),
    path("v1/", include("consent.api_urls")),
    path("v1/", include("delivery.webhooks.api_urls")),
    path("v1/", include("delivery.tracking.api_urls")),
    path("v1/", include("campaigns.api_urls")),
    path("v1/", include("journeys.api_urls")),
    # Last: any other /api/ URL is a problem+json 404, never Django's HTML page.
    re_path(r"^.*$", api_not_found, name="api-not-found"),
]

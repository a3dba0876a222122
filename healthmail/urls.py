from django.urls import include, path

from healthmail import observability

urlpatterns = [
    path("", include("healthmail.accounts.urls")),
    path("platform/", include("healthmail.tenants.urls")),
    path("api/", include("healthmail.api.urls")),
    path("healthz", observability.healthz, name="healthz"),
    path("metrics", observability.metrics, name="metrics"),
]

"""Platform administration under /platform/ and the organization settings page.

Included at the site root (healthmail/urls.py) so both live in the one `tenants` namespace.
"""

from django.urls import path

from . import views

app_name = "tenants"

urlpatterns = [
    path("platform/tenants/", views.tenant_list, name="tenant_list"),
    path("platform/tenants/new/", views.tenant_create, name="tenant_create"),
    path("platform/tenants/<uuid:tenant_id>/", views.tenant_detail, name="tenant_detail"),
    path("platform/tenants/<uuid:tenant_id>/status/", views.tenant_status, name="tenant_status"),
    path("platform/tenants/<uuid:tenant_id>/baas/new/", views.baa_create, name="baa_create"),
    path(
        "platform/tenants/<uuid:tenant_id>/baas/<uuid:baa_id>/terminate/",
        views.baa_terminate,
        name="baa_terminate",
    ),
    path("settings/organization/", views.tenant_settings, name="settings"),
]

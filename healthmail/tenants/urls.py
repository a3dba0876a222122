from django.urls import path

from . import views

app_name = "tenants"

urlpatterns = [
    path("tenants/", views.tenant_list, name="tenant_list"),
]

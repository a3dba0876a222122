from django.urls import path

from . import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("<uuid:endpoint_id>/", views.endpoint_detail, name="detail"),
    path("<uuid:endpoint_id>/action/", views.endpoint_action, name="action"),
]

from django.urls import path

from . import staff_views

app_name = "portal_staff"

urlpatterns = [
    path("", staff_views.portal_message_list, name="list"),
    path("<uuid:portal_message_id>/", staff_views.portal_message_detail, name="detail"),
    path("<uuid:portal_message_id>/recall/", staff_views.portal_message_recall, name="recall"),
]

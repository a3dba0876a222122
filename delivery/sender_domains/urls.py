from django.urls import path

from . import views

app_name = "delivery"

urlpatterns = [
    path("", views.sender_domain_list, name="sender_domain_list"),
    path("<uuid:sender_domain_id>/", views.sender_domain_detail, name="sender_domain_detail"),
    path("<uuid:sender_domain_id>/check/", views.sender_domain_check, name="sender_domain_check"),
    path("<uuid:sender_domain_id>/rotate/", views.dkim_key_rotate, name="dkim_key_rotate"),
    path("<uuid:sender_domain_id>/keys/<uuid:key_id>/retire/", views.dkim_key_retire, name="dkim_key_retire"),
    path(
        "<uuid:sender_domain_id>/pauses/<uuid:pause_id>/lift/",
        views.domain_pause_lift,
        name="domain_pause_lift",
    ),
]

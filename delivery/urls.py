from django.urls import path

from . import views

app_name = "sending"  # "delivery" names the sender-domain pages

urlpatterns = [
    path("", views.source_list, name="source_list"),
    path("sources/<slug:source_type>/<str:source_id>/", views.source_progress, name="source_progress"),
    path("messages/", views.message_search, name="message_search"),
    path("messages/<uuid:message_id>/evidence/", views.message_evidence, name="message_evidence"),
    path("domains/", views.domain_table, name="domain_table"),
]

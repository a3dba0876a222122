"""Staff consent pages, under /consent/."""

from django.urls import path

from . import views

app_name = "consent"

urlpatterns = [
    path("contacts/<uuid:contact_id>/", views.contact_consent, name="contact_consent"),
    path("contacts/<uuid:contact_id>/record/", views.contact_consent_record, name="contact_consent_record"),
    path("contacts/<uuid:contact_id>/waiver/", views.contact_waiver_record, name="contact_waiver_record"),
    path("contacts/<uuid:contact_id>/signing-link/", views.contact_signing_link, name="contact_signing_link"),
    path(
        "contacts/<uuid:contact_id>/authorizations/record/",
        views.contact_authorization_record,
        name="contact_authorization_record",
    ),
    path(
        "contacts/<uuid:contact_id>/authorizations/<uuid:authorization_id>/end/",
        views.contact_authorization_end,
        name="contact_authorization_end",
    ),
    path(
        "contacts/<uuid:contact_id>/authorizations/<uuid:authorization_id>/revoke/",
        views.contact_authorization_revoke,
        name="contact_authorization_revoke",
    ),
    path("authorization-texts/", views.text_list, name="text_list"),
    path("authorization-texts/new/", views.text_create, name="text_create"),
    path("authorization-texts/<uuid:text_id>/", views.text_detail, name="text_detail"),
    path("suppressions/", views.suppression_list, name="suppression_list"),
    path("suppressions/<uuid:suppression_id>/remove/", views.suppression_remove, name="suppression_remove"),
    path("settings/", views.settings_page, name="settings"),
    path("topics/new/", views.topic_create, name="topic_create"),
    path("reports/", views.reports, name="reports"),
]

from django.urls import path

from . import views

app_name = "incidents"

urlpatterns = [
    path("", views.incident_list, name="list"),
    path("new/", views.incident_new, name="new"),
    path("access-requests/", views.access_request_list, name="access_requests"),
    path(
        "access-requests/<uuid:request_id>/extend/", views.access_request_extend, name="access_request_extend"
    ),
    path(
        "access-requests/<uuid:request_id>/deliver/",
        views.access_request_deliver,
        name="access_request_deliver",
    ),
    path("disclosures/", views.disclosures_accounting, name="disclosures_accounting"),
    path("<uuid:incident_id>/", views.incident_detail, name="detail"),
    path("<uuid:incident_id>/evidence/", views.evidence_add, name="evidence_add"),
    path("<uuid:incident_id>/affected/", views.affected_derive, name="affected_derive"),
    path("<uuid:incident_id>/assessment/", views.assessment_save, name="assessment_save"),
    path("<uuid:incident_id>/decision/", views.decision_propose, name="decision_propose"),
    path("<uuid:incident_id>/sign-off/", views.decision_sign_off, name="decision_sign_off"),
    path("<uuid:incident_id>/reject/", views.decision_reject, name="decision_reject"),
    path("<uuid:incident_id>/letter/", views.letter_save, name="letter_save"),
    path("<uuid:incident_id>/letter/preview/", views.letter_preview, name="letter_preview"),
    path("<uuid:incident_id>/notices/", views.notices_send, name="notices_send"),
    path("<uuid:incident_id>/close/", views.incident_close, name="close"),
]

from django.urls import path

from . import access_denial_views, notice_views, oversight_views, views

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
    path("access-reviews/", oversight_views.access_review_list, name="access_reviews"),
    path("access-reviews/new/", oversight_views.access_review_new, name="access_review_new"),
    path(
        "access-reviews/<uuid:review_id>/",
        oversight_views.access_review_detail,
        name="access_review_detail",
    ),
    path("policies/", oversight_views.policy_list, name="policies"),
    path("policies/publish/", oversight_views.policy_publish, name="policy_publish"),
    path("policies/mine/", oversight_views.my_policies, name="my_policies"),
    path(
        "policies/<uuid:version_id>/acknowledge/",
        oversight_views.policy_acknowledge,
        name="policy_acknowledge",
    ),
    path(
        "access-requests/<uuid:request_id>/deny/",
        access_denial_views.access_request_deny,
        name="access_request_deny",
    ),
    path(
        "access-requests/<uuid:request_id>/fee/",
        access_denial_views.access_request_fee,
        name="access_request_fee",
    ),
    path(
        "access-requests/<uuid:request_id>/review-request/",
        access_denial_views.denial_review_request,
        name="denial_review_request",
    ),
    path(
        "access-requests/<uuid:request_id>/review/",
        access_denial_views.denial_review_decide,
        name="denial_review_decide",
    ),
    path("denial-reviews/", access_denial_views.denial_reviews, name="denial_reviews"),
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
    path(
        "<uuid:incident_id>/audience-notices/prepare/",
        notice_views.audience_notice_prepare,
        name="audience_notice_prepare",
    ),
    path(
        "<uuid:incident_id>/audience-notices/sent/",
        notice_views.audience_notice_sent,
        name="audience_notice_sent",
    ),
    path("<uuid:incident_id>/delays/", views.delay_record, name="delay_record"),
    path("<uuid:incident_id>/close/", views.incident_close, name="close"),
]

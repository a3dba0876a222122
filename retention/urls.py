from django.urls import path

from .views import holds, records, runs

app_name = "retention"

urlpatterns = [
    path("", records.dashboard, name="dashboard"),
    path("policies/", records.policy_list, name="policy_list"),
    path("policies/<slug:category>/", records.policy_detail, name="policy_detail"),
    path("policy-versions/<uuid:policy_id>/decide/", records.policy_decide, name="policy_decide"),
    path("holds/", holds.hold_list, name="hold_list"),
    path("holds/new/", holds.hold_create, name="hold_create"),
    path("holds/mine/", holds.my_holds, name="my_holds"),
    path("holds/<uuid:hold_id>/", holds.hold_detail, name="hold_detail"),
    path("holds/<uuid:hold_id>/approve/", holds.hold_approve, name="hold_approve"),
    path("holds/<uuid:hold_id>/review/", holds.hold_review, name="hold_review"),
    path("holds/<uuid:hold_id>/release/", holds.hold_release, name="hold_release"),
    path("holds/<uuid:hold_id>/release/confirm/", holds.hold_release_confirm, name="hold_release_confirm"),
    path("holds/<uuid:hold_id>/notify/", holds.hold_notify, name="hold_notify"),
    path("holds/<uuid:hold_id>/acknowledge/", holds.hold_acknowledge, name="hold_acknowledge"),
    path("runs/", runs.run_list, name="run_list"),
    path("runs/plan/", runs.run_plan, name="run_plan"),
    path("runs/<uuid:run_id>/", runs.run_detail, name="run_detail"),
    path("runs/<uuid:run_id>/approve/", runs.run_approve, name="run_approve"),
    path("runs/<uuid:run_id>/cancel/", runs.run_cancel, name="run_cancel"),
    path("runs/<uuid:run_id>/certificate.pdf", runs.certificate_pdf, name="certificate_pdf"),
    path("runs/<uuid:run_id>/certificate.zip", runs.certificate_package, name="certificate_package"),
    path("runs/<uuid:run_id>/certificate/verify/", runs.certificate_verify, name="certificate_verify"),
    path("exceptions/", records.exception_list, name="exception_list"),
    path("exceptions/<uuid:exception_id>/decide/", records.exception_decide, name="exception_decide"),
    path("archive/", records.archive_search, name="archive_search"),
    path("archive/<uuid:archived_id>/", records.archive_retrieve, name="archive_retrieve"),
    path("exports/", records.export_list, name="export_list"),
    path("exports/<uuid:export_id>/download/", records.export_download, name="export_download"),
]

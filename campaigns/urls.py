from django.urls import path

from .views import campaigns, editor, reports, templates

app_name = "campaigns"

urlpatterns = [
    path("", campaigns.campaign_list, name="campaign_list"),
    path("new/", campaigns.campaign_new, name="campaign_new"),
    path("approvals/", campaigns.approval_list, name="approval_list"),
    path("<uuid:campaign_id>/", campaigns.campaign_detail, name="campaign_detail"),
    path("<uuid:campaign_id>/edit/", campaigns.campaign_edit, name="campaign_edit"),
    path("<uuid:campaign_id>/progress/", campaigns.campaign_progress, name="campaign_progress"),
    path("<uuid:campaign_id>/submit/", campaigns.campaign_submit, name="campaign_submit"),
    path("<uuid:campaign_id>/withdraw/", campaigns.campaign_withdraw, name="campaign_withdraw"),
    path("<uuid:campaign_id>/review/", campaigns.campaign_review, name="campaign_review"),
    path("<uuid:campaign_id>/schedule/", campaigns.campaign_schedule, name="campaign_schedule"),
    path("<uuid:campaign_id>/unschedule/", campaigns.campaign_unschedule, name="campaign_unschedule"),
    path("<uuid:campaign_id>/pause/", campaigns.campaign_pause, name="campaign_pause"),
    path("<uuid:campaign_id>/resume/", campaigns.campaign_resume, name="campaign_resume"),
    path("<uuid:campaign_id>/cancel/", campaigns.campaign_cancel, name="campaign_cancel"),
    path("<uuid:campaign_id>/report/", reports.campaign_report, name="campaign_report"),
    path("<uuid:campaign_id>/report.csv", reports.campaign_report_csv, name="campaign_report_csv"),
    path("<uuid:campaign_id>/report.pdf", reports.campaign_report_pdf, name="campaign_report_pdf"),
    path("reports/compare/", reports.campaign_compare, name="campaign_compare"),
    path("templates/", templates.template_list, name="template_list"),
    path("templates/new/", templates.template_new, name="template_new"),
    path("templates/<uuid:template_id>/", templates.template_edit, name="template_edit"),
    path("templates/<uuid:template_id>/preview/", templates.template_preview, name="template_preview"),
    path("templates/<uuid:template_id>/test/", templates.template_test_send, name="template_test_send"),
    path("templates/design/new/", editor.template_design, name="template_design_new"),
    path("templates/<uuid:template_id>/design/", editor.template_design, name="template_design"),
    path(
        "templates/<uuid:template_id>/preview/frame/",
        editor.template_preview_frame,
        name="template_preview_frame",
    ),
    path("templates/blocks/", templates.block_list, name="block_list"),
    path("templates/blocks/new/", templates.block_edit, name="block_new"),
    path("templates/blocks/<uuid:block_id>/", templates.block_edit, name="block_edit"),
    path("templates/branding/", templates.branding_edit, name="branding"),
]

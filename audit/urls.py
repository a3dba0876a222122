from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="event_list"),
    path("events/<int:event_id>/", views.event_detail, name="event_detail"),
    path("verify/", views.chain_verify, name="chain_verify"),
    path("export/", views.event_export, name="event_export"),
    path("find-patient/", views.patient_lookup, name="patient_lookup"),
    path("settings/", views.audit_settings, name="settings"),
    path("signing-keys/", views.signing_keys, name="signing_keys"),
    path("signing-keys/<str:fingerprint>.pem", views.signing_key_pem, name="signing_key_pem"),
    path("alerts/", views.alert_list, name="alert_list"),
    path("alerts/<uuid:alert_id>/acknowledge/", views.alert_acknowledge, name="alert_acknowledge"),
    path("break-glass/", views.break_glass_list, name="break_glass_list"),
    path("break-glass/<uuid:grant_id>/close/", views.break_glass_close, name="break_glass_close"),
]

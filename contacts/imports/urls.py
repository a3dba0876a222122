from django.urls import path

from . import views

app_name = "contact_imports"

urlpatterns = [
    path("", views.job_list, name="job_list"),
    path("new/", views.upload, name="upload"),
    path("<uuid:job_id>/", views.job_detail, name="job_detail"),
    path("<uuid:job_id>/map/", views.job_map, name="job_map"),
    path("<uuid:job_id>/errors.csv", views.error_report, name="error_report"),
]

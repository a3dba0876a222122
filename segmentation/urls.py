from django.urls import path

from . import views

app_name = "segmentation"

urlpatterns = [
    path("", views.segment_list, name="segment_list"),
    path("new/", views.segment_new, name="segment_new"),
    path("count/", views.segment_count, name="segment_count"),
    path("codes/conditions/", views.condition_lookup, name="condition_lookup"),
    path("<uuid:segment_id>/", views.segment_edit, name="segment_edit"),
    path("<uuid:segment_id>/export/", views.segment_export, name="segment_export"),
    path("<uuid:segment_id>/members/", views.segment_members, name="segment_members"),
]

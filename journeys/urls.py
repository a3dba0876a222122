from django.urls import path

from . import views

app_name = "journeys"

urlpatterns = [
    path("", views.journey_list, name="journey_list"),
    path("new/", views.journey_new, name="journey_new"),
    path("<uuid:journey_id>/", views.journey_detail, name="journey_detail"),
    path("<uuid:journey_id>/edit/", views.journey_edit, name="journey_edit"),
    path("<uuid:journey_id>/submit/", views.journey_submit, name="journey_submit"),
    path("<uuid:journey_id>/review/", views.journey_review, name="journey_review"),
    path("<uuid:journey_id>/activate/", views.journey_activate, name="journey_activate"),
    path("<uuid:journey_id>/pause/", views.journey_pause, name="journey_pause"),
    path("<uuid:journey_id>/resume/", views.journey_resume, name="journey_resume"),
    path("<uuid:journey_id>/archive/", views.journey_archive, name="journey_archive"),
]

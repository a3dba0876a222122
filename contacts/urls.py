from django.urls import path

from . import views

app_name = "contacts"

urlpatterns = [
    path("", views.contact_list, name="contact_list"),
    path("export/", views.contact_export, name="contact_export"),
    path("<uuid:contact_id>/", views.contact_detail, name="contact_detail"),
    path("<uuid:contact_id>/unmask/", views.contact_unmask, name="contact_unmask"),
    path("fields/", views.custom_field_list, name="custom_field_list"),
    path("fields/<uuid:field_id>/delete/", views.custom_field_delete, name="custom_field_delete"),
]

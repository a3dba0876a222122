from django.urls import path

from . import api

urlpatterns = [
    path("", api.ContactCollection.as_view(), name="api-contacts"),
    path("/bulk", api.ContactBulk.as_view(), name="api-contacts-bulk"),
    path("/<uuid:contact_id>", api.ContactItem.as_view(), name="api-contact"),
]

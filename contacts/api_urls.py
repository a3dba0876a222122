from django.urls import path

from . import api

urlpatterns = [
    path("contacts", api.ContactCollection.as_view(), name="api-contacts"),
    path("contacts/bulk", api.ContactBulk.as_view(), name="api-contacts-bulk"),
    path("contacts/<uuid:contact_id>", api.ContactItem.as_view(), name="api-contact"),
]

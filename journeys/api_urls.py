from django.urls import path

from . import api

urlpatterns = [
    path("journeys", api.JourneyCollection.as_view(), name="api-journeys"),
    path("journeys/<uuid:journey_id>", api.JourneyItem.as_view(), name="api-journey"),
    path("journeys/<uuid:journey_id>/enrolments", api.JourneyEnrolment.as_view(), name="api-journey-enrol"),
    path("journeys/<uuid:journey_id>/removals", api.JourneyRemoval.as_view(), name="api-journey-remove"),
    path("contacts/<uuid:contact_id>/journeys", api.ContactPositions.as_view(), name="api-contact-journeys"),
]

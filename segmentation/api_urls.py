from django.urls import path

from . import api

urlpatterns = [
    path("segments", api.SegmentCollection.as_view(), name="api-segments"),
    path("segments/count", api.DefinitionCount.as_view(), name="api-segments-count"),
    path("segments/<uuid:segment_id>", api.SegmentItem.as_view(), name="api-segment"),
    path("segments/<uuid:segment_id>/count", api.SegmentCount.as_view(), name="api-segment-count"),
]

"""API shapes for segments. Counts are always masked below the threshold."""

from __future__ import annotations

from rest_framework import serializers

from .services import CountResult, masked


class SegmentInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    definition = serializers.JSONField(help_text="A segment definition (see the segment language docs).")


class SegmentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    definition = serializers.JSONField(required=False)


class DefinitionSerializer(serializers.Serializer):
    definition = serializers.JSONField()


class SegmentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    definition = serializers.JSONField()
    uses_phi = serializers.BooleanField()
    last_count = serializers.SerializerMethodField(help_text="Null when never counted or masked.")
    last_count_display = serializers.SerializerMethodField()
    last_counted_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_last_count(self, segment) -> int | None:
        return None if segment.last_count is None else masked(segment.last_count)[0]

    def get_last_count_display(self, segment) -> str:
        return "" if segment.last_count is None else masked(segment.last_count)[1]


class CellSerializer(serializers.Serializer):
    key = serializers.CharField()
    count = serializers.IntegerField(allow_null=True)
    display = serializers.CharField()


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField(allow_null=True, help_text="Null when fewer than the threshold.")
    display = serializers.CharField()
    uses_phi = serializers.BooleanField()
    breakdown = serializers.DictField(child=CellSerializer(many=True))
    counted_at = serializers.DateTimeField()

    @classmethod
    def of(cls, result: CountResult) -> dict:
        return cls(result).data

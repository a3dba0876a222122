"""API shapes for segments. Counts come from the disclosure policy (healthmail/disclosure.py);
nothing here formats a number."""

from __future__ import annotations

from rest_framework import serializers

from healthmail.disclosure import Disclosed

from .services import CountResult


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
    last_count = serializers.IntegerField(
        allow_null=True, help_text="Null when never counted or masked; rounded and noisy when clinical."
    )
    last_count_display = serializers.CharField()
    last_counted_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @classmethod
    def of(cls, segment, shown: Disclosed | None) -> dict:
        fields = {name: getattr(segment, name, None) for name in cls._declared_fields}
        fields["last_count"] = shown.value if shown is not None else None
        fields["last_count_display"] = shown.display if shown is not None else ""
        return cls(fields).data


class CellSerializer(serializers.Serializer):
    key = serializers.CharField()
    count = serializers.IntegerField(allow_null=True)
    display = serializers.CharField()


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField(
        allow_null=True,
        help_text="Null when masked; rounded and noisy for clinical criteria without PHI access.",
    )
    display = serializers.CharField()
    exact = serializers.BooleanField(help_text="True when `count` is the true count.")
    empty = serializers.BooleanField(help_text="True when no contact matches and saying so is safe.")
    uses_phi = serializers.BooleanField()
    breakdown = serializers.DictField(child=CellSerializer(many=True))
    counted_at = serializers.DateTimeField()

    @classmethod
    def of(cls, result: CountResult) -> dict:
        return cls(result).data

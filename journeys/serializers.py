from __future__ import annotations

from rest_framework import serializers


class JourneySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField()
    version = serializers.IntegerField(source="live_version.number", allow_null=True, default=None)
    entry_kind = serializers.CharField(
        help_text="How contacts enter the live version: event, manual, date, consent, engagement, "
        "segment or form (empty before the first activation)."
    )
    entry_event = serializers.CharField(
        help_text="What the trigger names: the event type; for engagement email.opened, email.clicked "
        'or email.not_opened (did not open a chosen send within N days, see "definition"); for '
        "consent <granted|revoked>:<topic>; for segment the segment id; for form the form's key."
    )


class StepCountSerializer(serializers.Serializer):
    """A disclosed count: `value` is null when the policy hides it; `display` is what to print."""

    value = serializers.IntegerField(allow_null=True)
    display = serializers.CharField()
    exact = serializers.BooleanField()


class JourneyDetailSerializer(JourneySerializer):
    definition = serializers.JSONField(source="live_version.definition", allow_null=True, default=None)
    steps = serializers.DictField(child=serializers.DictField(child=StepCountSerializer()))


class EnrolmentSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField()


class PositionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    journey_id = serializers.UUIDField()
    journey_name = serializers.CharField(source="journey.name")
    version = serializers.IntegerField(source="version.number")
    step = serializers.CharField()
    state = serializers.CharField()
    due_at = serializers.DateTimeField(allow_null=True)
    waiting_event = serializers.CharField()
    entered_at = serializers.DateTimeField()
    exited_at = serializers.DateTimeField(allow_null=True)
    exit_reason = serializers.CharField()


class RemovalSerializer(serializers.Serializer):
    removed = serializers.IntegerField()


class JourneyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    definition = serializers.JSONField(
        help_text="The journey definition (docs/journeys.md); checked before saving."
    )


class JourneyCreatedSerializer(serializers.Serializer):
    """A new journey: a draft version waiting to be submitted and approved in the web app."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField()
    version = serializers.IntegerField()
    version_status = serializers.CharField()

"""API shapes. Input is parsed structurally here; the rules live in ContactInput.cleaned() and the
service, so the API, the import and the UI refuse the same things with the same words."""

from __future__ import annotations

from rest_framework import serializers

from healthmail.api.serializers import StrictCharField

from .normalize import ContactInput
from .services import UpsertResult

MAX_BULK = 1000


class ContactInputSerializer(serializers.Serializer):
    email = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=254)
    first_name = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    last_name = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    phone = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    postal_address = serializers.DictField(child=StrictCharField(allow_blank=True), required=False)
    birth_date = serializers.CharField(required=False, allow_null=True, help_text="YYYY-MM-DD")
    external_ids = serializers.DictField(child=StrictCharField(), required=False)
    demographics = serializers.DictField(child=StrictCharField(allow_null=True), required=False)
    clinical = serializers.DictField(required=False)
    journey_stage = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    tags = serializers.ListField(child=StrictCharField(), required=False, max_length=200)
    custom = serializers.DictField(required=False)

    def validate(self, attrs):
        # Mass assignment (tenant_id, id, deleted_at, derived columns…) is refused, not ignored.
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        if not attrs.get("email") and not attrs.get("external_ids"):
            raise serializers.ValidationError({"email": ["Give an email or at least one external id."]})
        return attrs

    def to_input(self) -> ContactInput:
        return ContactInput(**self.validated_data)


class ContactBulkSerializer(serializers.Serializer):
    contacts = serializers.ListField(child=serializers.JSONField(), min_length=1)


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()


class UpsertResultSerializer(serializers.Serializer):
    """Ids and outcomes only: stored as the idempotent replay, so it must carry no PHI."""

    index = serializers.IntegerField()
    status = serializers.CharField()
    id = serializers.UUIDField(allow_null=True)
    # A field named like Serializer.errors: DRF's metaclass takes declared fields off the class.
    errors = FieldErrorSerializer(many=True)  # type: ignore[assignment]

    @staticmethod
    def of(result: UpsertResult) -> dict:
        return {
            "index": result.index,
            "status": result.status,
            "id": result.contact_id,
            "errors": [{"field": e.field, "message": e.message} for e in result.errors],
        }


class ContactBulkResultSerializer(serializers.Serializer):
    results = UpsertResultSerializer(many=True)
    counts = serializers.DictField(child=serializers.IntegerField())


class ContactSummarySerializer(serializers.Serializer):
    """One contact as the key may see it: masked hints unless the key holds contacts:phi."""

    id = serializers.UUIDField()
    masked = serializers.BooleanField()
    damaged = serializers.BooleanField(
        help_text="The stored data failed its integrity check: nothing of it is shown; an alert names it."
    )
    email = serializers.CharField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    first_name = serializers.CharField(allow_null=True, required=False)
    last_name = serializers.CharField(allow_null=True, required=False)
    phone = serializers.CharField(allow_null=True)
    birth_date = serializers.CharField(allow_null=True, help_text="An age band when masked.")
    journey_stage = serializers.CharField(allow_blank=True)
    state = serializers.CharField(allow_blank=True)
    is_minor = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(
        allow_null=True, help_text="Only with contacts:phi: it moves when a written clinical value differs."
    )


class ContactDetailSerializer(ContactSummarySerializer):
    postal_address = serializers.DictField(allow_null=True)
    external_ids = serializers.DictField(allow_null=True)
    demographics = serializers.DictField(allow_null=True)
    custom_fields = serializers.DictField(allow_null=True)
    clinical = serializers.DictField(allow_null=True, help_text="Only with contacts:phi.")
    sensitive_categories = serializers.ListField(child=serializers.CharField(), allow_null=True)
    birth_year = serializers.IntegerField(allow_null=True)
    age_90_or_older = serializers.BooleanField()
    zip3 = serializers.CharField(allow_blank=True)

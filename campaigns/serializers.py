"""API shapes of transactional messages. Structure is parsed here; the rules live in
campaigns/transactional.py. Answers carry ids, states and evidence, never content or addresses:
the idempotent replay of a POST is stored unencrypted."""

from __future__ import annotations

from rest_framework import serializers

from contacts.addresses import validate_address
from delivery.models import EncryptionPolicy, Message, Stream

from .transactional import ALLOWED_POLICY_CHOICES, MAX_BATCH, PURPOSE_CHOICES, MessageRequest, RecipientRef


class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        # Mass assignment (tenant_id, state, stream...) is refused, not ignored; nested objects too.
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class ExternalIdSerializer(StrictSerializer):
    system = serializers.CharField(max_length=32)
    id = serializers.CharField(max_length=200)


class RecipientSerializer(StrictSerializer):
    contact_id = serializers.UUIDField(required=False)
    external_id = ExternalIdSerializer(required=False)
    address = serializers.EmailField(required=False, validators=[validate_address])

    def validate(self, attrs):
        if len(attrs) != 1:
            raise serializers.ValidationError("Give exactly one of contact_id, external_id or address.")
        return attrs


class InlineContentSerializer(StrictSerializer):
    subject = serializers.CharField(max_length=300)
    preheader = serializers.CharField(max_length=300, required=False, allow_blank=True)
    html = serializers.CharField(max_length=200_000)
    text = serializers.CharField(max_length=200_000, required=False, allow_blank=True)


class MessageRequestSerializer(StrictSerializer):
    recipient = RecipientSerializer()
    purpose = serializers.ChoiceField(choices=PURPOSE_CHOICES)
    template_id = serializers.UUIDField(required=False)
    # DRF's metaclass takes declared fields off the class, so `.data` stays the serializer's own.
    data = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Values for {{ data.name }} fields (text or numbers)."
    )
    content = InlineContentSerializer(required=False)
    encryption_policy = serializers.ChoiceField(
        choices=ALLOWED_POLICY_CHOICES,
        default=EncryptionPolicy.TLS_ELSE_PORTAL,
    )
    language = serializers.CharField(max_length=12, required=False, allow_blank=True)
    sender_domain = serializers.CharField(max_length=253, required=False, allow_blank=True)

    def to_request(self) -> MessageRequest:
        data = self.validated_data
        recipient = data["recipient"]
        external = recipient.get("external_id") or {}
        return MessageRequest(
            recipient=RecipientRef(
                contact_id=recipient.get("contact_id"),
                external_system=external.get("system", ""),
                external_id=external.get("id", ""),
                address=recipient.get("address", ""),
            ),
            purpose=data["purpose"],
            template_id=data.get("template_id"),
            data=dict(data.get("data") or {}),
            content=dict(data["content"]) if data.get("content") else None,
            encryption_policy=data["encryption_policy"],
            language=data.get("language", ""),
            sender_domain=data.get("sender_domain", ""),
        )


class MessageBatchSerializer(serializers.Serializer):
    messages = serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=MAX_BATCH)


class AcceptedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    message_id = serializers.CharField(help_text="The RFC 5322 Message-ID.")
    stream = serializers.CharField()


class BatchItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.UUIDField(allow_null=True)
    status = serializers.CharField()
    code = serializers.CharField(allow_blank=True)
    detail = serializers.CharField(allow_blank=True)


class BatchResultSerializer(serializers.Serializer):
    results = BatchItemSerializer(many=True)
    accepted = serializers.IntegerField()
    refused = serializers.IntegerField()


class AttemptSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.CharField()
    smtp_code = serializers.IntegerField(allow_null=True)
    mx_host = serializers.CharField()
    evidence = serializers.JSONField()


class MessageFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Message.State.choices, required=False)
    stream = serializers.ChoiceField(choices=Stream.choices, required=False)
    contact_id = serializers.UUIDField(required=False)
    created_after = serializers.DateTimeField(required=False)


class MessageSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField(source="state")
    stream = serializers.CharField()
    purpose = serializers.CharField()
    contact_id = serializers.UUIDField(allow_null=True)
    message_id = serializers.CharField()
    to_domain = serializers.CharField()
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class MessageStatusSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField(source="state")
    status_reason = serializers.CharField(source="state_reason")
    stream = serializers.CharField()
    purpose = serializers.CharField()
    encryption_policy = serializers.CharField()
    message_id = serializers.CharField()
    to_domain = serializers.CharField()
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    evidence = serializers.JSONField(help_text="TLS or portal evidence of the final delivery.")
    attempt_log = AttemptSerializer(many=True)

"""Shapes of the API's own answers (the problem document and /me), for the OpenAPI schema."""

from typing import Any

from rest_framework import serializers

# These render the API's own answers: plain dicts, or a list of them with many=True (which the stubs
# cannot express for the instance type, hence Serializer[Any]).


class ProblemSerializer(serializers.Serializer[Any]):
    """An RFC 9457 problem document; every API error answers with one (application/problem+json)."""

    type = serializers.CharField(help_text="Always `about:blank`: `code` says what happened.")
    title = serializers.CharField(help_text="The HTTP status phrase.")
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `rate_limited`.")
    request_id = serializers.CharField(help_text="Quote it to support; also sent as `X-Request-ID`.")
    # DRF's metaclass takes declared fields off the class, so Serializer.errors stays what it was;
    # the stubs cannot say so.
    errors = serializers.JSONField(  # type: ignore[assignment]
        required=False,
        help_text="Validation errors (422 only): usually field name → list of messages; a list of "
        "`{message, path}` objects where the body is a tree (segment definitions).",
    )


class TenantSummarySerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    slug = serializers.SlugField()


class KeySummarySerializer(serializers.Serializer[Any]):
    prefix = serializers.CharField()
    name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)


class WhoAmISerializer(serializers.Serializer[Any]):
    tenant = TenantSummarySerializer()
    key = KeySummarySerializer()


class SigningKeySerializer(serializers.Serializer[Any]):
    key_id = serializers.CharField(help_text="As named in every signature's key_id.")
    public_key = serializers.CharField(help_text="Raw Ed25519 public key, hex.")
    public_key_pem = serializers.CharField(help_text="The same key as PEM (SubjectPublicKeyInfo).")
    created_at = serializers.DateTimeField()
    retired_at = serializers.DateTimeField(allow_null=True, help_text="No longer signs; still verifies.")


class StrictCharField(serializers.CharField):
    """Text that must arrive as a JSON string, as the schema says (`type: string`): DRF's CharField
    turns numbers into text, so a client's wrong type would pass unnoticed."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)

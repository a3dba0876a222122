from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from healthmail.crypto import signing

from .serializers import SigningKeySerializer, WhoAmISerializer


class WhoAmI(APIView):
    """The calling key's tenant and scopes: lets an integrator check its set-up."""

    required_scopes = {"GET": []}  # any valid key may look at itself

    @extend_schema(operation_id="me_retrieve", responses=WhoAmISerializer, tags=["meta"])
    def get(self, request):
        key = request.auth
        data = {
            "tenant": {"id": key.tenant_id, "slug": key.tenant.slug},
            "key": {
                "prefix": key.prefix,
                "name": key.name,
                "scopes": key.scopes,
                "expires_at": key.expires_at,
            },
        }
        return Response(WhoAmISerializer(data).data)


class SigningKeys(APIView):
    """The organization's published Ed25519 keys: every audit export, chain checkpoint, destruction
    certificate and evidence package it ever signed verifies with one of them."""

    required_scopes = {"GET": []}  # public keys: any valid key may read them

    @extend_schema(operation_id="signing_keys_list", responses=SigningKeySerializer(many=True), tags=["meta"])
    def get(self, request):
        signing.signing_key_current(request.tenant)  # published before the first signature
        keys = signing.signing_keys(request.tenant)
        return Response(
            SigningKeySerializer(
                [
                    {
                        "key_id": key.key_id,
                        "public_key": key.public_key,
                        "public_key_pem": signing.public_key_pem(key),
                        "created_at": key.created_at,
                        "retired_at": key.retired_at,
                    }
                    for key in keys
                ],
                many=True,
            ).data
        )

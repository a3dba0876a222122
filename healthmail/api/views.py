from typing import ClassVar

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from healthmail.crypto import signing

from .authentication import ApiRequest
from .serializers import SigningKeySerializer, WhoAmISerializer


class WhoAmI(APIView):
    """The calling key's tenant and scopes: lets an integrator check its set-up."""

    required_scopes: ClassVar[dict[str, list[str]]] = {"GET": []}  # any valid key may look at itself

    @extend_schema(operation_id="me_retrieve", responses=WhoAmISerializer, tags=["meta"])
    def get(self, request: ApiRequest) -> Response:
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

    required_scopes: ClassVar[dict[str, list[str]]] = {"GET": []}  # public keys: any valid key may read them

    @extend_schema(operation_id="signing_keys_list", responses=SigningKeySerializer(many=True), tags=["meta"])
    def get(self, request: ApiRequest) -> Response:
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


class ApiDocs(SpectacularRedocView):
    """The API reference (Redoc from our static files). Its policy lets the page load nothing from
    another host: Redoc's footer asks a CDN for a logo, which the browser then never requests."""

    authentication_classes = []
    permission_classes = []
    template_name = "api/docs.html"
    url_name = "schema"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        response: Response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_POLICY
        return response


DOCS_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; font-src 'self' data:; frame-ancestors 'none'"
)

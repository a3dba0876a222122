from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .serializers import WhoAmISerializer


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

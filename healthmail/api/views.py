from rest_framework.response import Response
from rest_framework.views import APIView

from .permissions import HasApiKey


class WhoAmI(APIView):
    """The calling key's tenant and scopes: lets an integrator check its set-up."""

    permission_classes = [HasApiKey]

    def get(self, request):
        key = request.auth
        return Response(
            {
                "tenant": {"id": str(key.tenant_id), "slug": key.tenant.slug},
                "key": {"prefix": key.prefix, "name": key.name, "scopes": key.scopes,
                        "expires_at": key.expires_at},
            }
        )

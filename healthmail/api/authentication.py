"""DRF side of API-key authentication. The key was checked by TenantMiddleware, which also opened
the tenant context; here DRF only learns the outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from healthmail.accounts.models import ApiKey
from healthmail.accounts.requests import TenantRequest

if TYPE_CHECKING:
    from healthmail.tenants.models import Tenant


class ApiClient:
    """The `request.user` of an API request: never a person, never staff."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = api_key.prefix

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey] | None:
        django_request = cast(TenantRequest, request._request)
        if getattr(django_request, "api_key_throttled", False):
            raise exceptions.Throttled(
                wait=settings.API_KEY_FAILURE_WINDOW_SECONDS, detail=django_request.api_key_error
            )
        if getattr(django_request, "api_key_error", ""):
            raise exceptions.AuthenticationFailed(django_request.api_key_error)
        api_key = getattr(django_request, "api_key", None)
        if api_key is None:
            return None
        return ApiClient(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="healthmail"'


class ApiRequest(Request):
    """A DRF request as API views see it once HasScopes let it in: authenticated with an API key of
    the tenant TenantMiddleware opened. Only a type: DRF hands `tenant` through to the Django request."""

    auth: ApiKey
    tenant: Tenant

from django.urls import path

from .views import api_keys, home, members, signin, smart_clients

app_name = "accounts"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", signin.login_view, name="login"),
    path("logout/", signin.logout_view, name="logout"),
    path("mfa/verify/", signin.mfa_verify, name="mfa_verify"),
    path("mfa/setup/", signin.mfa_setup, name="mfa_setup"),
    path("invite/<str:uidb64>/<str:token>/", signin.invite_accept, name="invite_accept"),
    path("switch-tenant/", home.switch_tenant, name="switch_tenant"),
    path("members/", members.member_list, name="member_list"),
    path("members/invite/", members.member_invite, name="member_invite"),
    path("members/<uuid:membership_id>/", members.member_detail, name="member_detail"),
    path("members/<uuid:membership_id>/role/", members.member_role, name="member_role"),
    path("members/<uuid:membership_id>/deactivate/", members.member_deactivate, name="member_deactivate"),
    path("members/<uuid:membership_id>/reactivate/", members.member_reactivate, name="member_reactivate"),
    path("members/<uuid:membership_id>/mfa-reset/", members.member_mfa_reset, name="member_mfa_reset"),
    path(
        "members/<uuid:membership_id>/resend-invitation/",
        members.member_invitation_resend,
        name="member_invitation_resend",
    ),
    path("api-keys/", api_keys.api_key_list, name="api_key_list"),
    path("api-keys/new/", api_keys.api_key_create, name="api_key_create"),
    path("api-keys/<uuid:api_key_id>/revoke/", api_keys.api_key_revoke, name="api_key_revoke"),
    path("smart-clients/", smart_clients.smart_client_list, name="smart_client_list"),
    path("smart-clients/new/", smart_clients.smart_client_register, name="smart_client_register"),
    path(
        "smart-clients/<uuid:smart_client_id>/revoke/",
        smart_clients.smart_client_revoke,
        name="smart_client_revoke",
    ),
]

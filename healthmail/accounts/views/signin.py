"""Sign-in (password, then TOTP or a backup code), first-time MFA enrolment, sign-out, invitations."""

from __future__ import annotations

import time
from base64 import b32encode

import django_otp
import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from healthmail import audit_trail as audit
from healthmail.accounts import services, signin
from healthmail.accounts.forms import CodeForm, EnrolmentCodeForm, InvitationPasswordForm, SignInForm
from healthmail.accounts.middleware import SESSION_AUTH_AT, SESSION_LAST_SEEN
from healthmail.accounts.requests import SignedInRequest
from healthmail.errors import ApplicationError

from .access import actor_of, ip_of, no_store

SESSION_NEXT = "after_sign_in"


def _safe_next(request: HttpRequest, candidate: str) -> str:
    allowed = url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return candidate if candidate and allowed else ""


def _finish_sign_in(request: HttpRequest, device: Device) -> None:
    """Mark the session verified and give it a new id: privilege changed, so the id changes too."""
    django_otp.login(request, device)
    request.session.cycle_key()


def _after_sign_in_url(request: HttpRequest) -> str:
    return request.session.pop(SESSION_NEXT, "") or "/"


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.user.is_verified():
        return redirect("accounts:home")
    form = SignInForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = signin.sign_in_password(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                client_ip=ip_of(request),
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            status = error.status_code
        else:
            login(request, user)  # a new session id: nothing from before sign-in carries over
            now = int(time.time())
            request.session[SESSION_AUTH_AT] = now
            request.session[SESSION_LAST_SEEN] = now
            request.session[SESSION_NEXT] = _safe_next(request, request.GET.get("next", ""))
            if signin.has_confirmed_totp(user):
                return redirect("accounts:mfa_verify")
            return redirect("accounts:mfa_setup")
    return render(request, "accounts/login.html", {"form": form}, status=status)


@require_POST
def logout_view(request: SignedInRequest) -> HttpResponse:
    audit.record(actor=actor_of(request), action="auth.logout", tenant=request.tenant)
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("accounts:login")


@require_http_methods(["GET", "POST"])
def mfa_verify(request: SignedInRequest) -> HttpResponse:
    user = request.user
    if user.is_verified():
        return redirect("accounts:home")
    if not signin.has_confirmed_totp(user):
        return redirect("accounts:mfa_setup")
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            device = signin.mfa_verify(user=user, code=form.cleaned_data["code"], client_ip=ip_of(request))
        except ApplicationError as error:
            form.add_error("code", error.message)
            status = error.status_code
        else:
            _finish_sign_in(request, device)
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                messages.warning(
                    request,
                    f"You signed in with a backup code; {left} remain. "
                    "Ask your administrator to reset MFA if you lost your phone.",
                )
            return redirect(_after_sign_in_url(request))
    return render(request, "accounts/mfa_verify.html", {"form": form}, status=status)


def _qr_svg(config_url: str) -> str:
    # Rendered here, inline: the secret never goes to an external QR service.
    svg = segno.make(config_url, error="m").svg_inline(
        scale=5, omitsize=True, light="#fff", title="QR code for your authenticator app"
    )
    return mark_safe(svg)  # noqa: S308 - segno output, built from our own URL only


def _grouped_secret(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@require_http_methods(["GET", "POST"])
def mfa_setup(request: SignedInRequest) -> HttpResponse:
    user = request.user
    if user.is_verified():
        return redirect("accounts:home")
    if signin.has_confirmed_totp(user):
        return redirect("accounts:mfa_verify")
    device = signin.mfa_enrolment_device(user=user)
    form = EnrolmentCodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            enrolment = signin.mfa_enrol_confirm(
                user=user, code=form.cleaned_data["code"], client_ip=ip_of(request)
            )
        except ApplicationError as error:
            form.add_error("code", error.message)
            status = error.status_code
        else:
            _finish_sign_in(request, enrolment.device)
            context: dict[str, object] = {
                "codes": enrolment.backup_codes,
                "next_url": _after_sign_in_url(request),
            }
            return no_store(render(request, "accounts/backup_codes.html", context))
    context = {
        "form": form,
        "qr_svg": _qr_svg(device.config_url),
        "secret": _grouped_secret(device),
        "issuer": settings.OTP_TOTP_ISSUER,
    }
    return no_store(render(request, "accounts/mfa_setup.html", context, status=status))


@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    user = services.invitation_user(uidb64=uidb64, token=token)
    if user is None:
        return render(request, "accounts/invite_invalid.html", status=400)
    form = InvitationPasswordForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            services.invitation_accept(user=user, password=form.cleaned_data["password"])
        except ApplicationError as error:
            form.add_error("password", error.message)
            status = 400
        else:
            messages.success(request, "Your password is set. Sign in to set up two-factor authentication.")
            return redirect("accounts:login")
    return no_store(
        render(request, "accounts/invite_accept.html", {"form": form, "email": user.email}, status=status)
    )

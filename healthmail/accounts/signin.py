"""Sign-in: the password step, the second factor (TOTP or a backup code) and MFA enrolment.

Every attempt is audited; failures count towards the lockout (healthmail.accounts.throttle) whatever
the step, so guessing TOTP codes is as limited as guessing passwords. Messages never say whether an
address exists or which of email and password was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import authenticate
from django.db import transaction
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict

from . import throttle
from .membership import memberships_of
from .models import User

if TYPE_CHECKING:
    from healthmail.tenants.models import Tenant

BACKUP_CODE_COUNT = 10
DENIED = audit.DENIED
LOCKED_MESSAGE = (
    "Too many failed sign-in attempts. For your security, sign-in is paused for this account from "
    "your network for a while. Try again later or ask your administrator for help."
)


class SignInRefused(ApplicationError):
    """Wrong credentials or code. The form is shown again with this message."""

    status_code = 200
    title = "Sign-in refused"


class TooManyAttempts(ApplicationError):
    status_code = 429
    title = "Too many attempts"


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    backup_codes: list[str]


def _home_tenant(user: User) -> Tenant | None:
    """The tenant whose audit trail shows this person's sign-ins: where the session will land."""
    memberships = memberships_of(user)
    return memberships[0].tenant if memberships else None


def _refuse_if_locked(*, email: str, client_ip: str | None, action: str, user: User | None = None) -> None:
    if not throttle.is_locked(email=email, client_ip=client_ip):
        return
    audit.record(
        actor=Actor.for_user(user),
        action=action,
        outcome=DENIED,
        reason="too many failed attempts",
        target=user,
        tenant=_home_tenant(user) if user else None,
        details={"account": throttle.account_fingerprint(email)},
    )
    raise TooManyAttempts(LOCKED_MESSAGE, code="locked")


def sign_in_password(*, email: str, password: str, client_ip: str | None) -> User:
    """The first step. Returns the user whose password matched; the second factor is still due."""
    email = email.strip().lower()
    _refuse_if_locked(email=email, client_ip=client_ip, action="auth.login")
    user = authenticate(None, username=email, password=password)
    if user is None:
        throttle.record_failure(email=email, client_ip=client_ip)
        known = User.objects.filter(username=email).first()
        audit.record(
            actor=Actor.anonymous(),
            action="auth.login",
            outcome=DENIED,
            reason="wrong email or password",
            target=known,
            tenant=_home_tenant(known) if known else None,
            details={"account": throttle.account_fingerprint(email)},
        )
        raise SignInRefused("The email or password is incorrect.", code="credentials")
    audit.record(
        actor=Actor.for_user(user),
        action="auth.login",
        target=user,
        tenant=_home_tenant(user),
        details={"stage": "password"},
    )
    return user


def has_confirmed_totp(user: User) -> bool:
    return bool(TOTPDevice.objects.filter(user=user, confirmed=True).exists())


def _normalize_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _match(user: User, code: str) -> tuple[Device | None, str]:
    """Six digits are a TOTP code, anything else a backup code. Each device throttles itself too."""
    if code.isdigit() and len(code) == 6:
        for device in TOTPDevice.objects.filter(user=user, confirmed=True).select_for_update():
            # verify_token refuses a code whose time step was already used (last_t): no replay.
            if device.verify_token(code):
                return device, "totp"
        return None, "totp"
    for device in StaticDevice.objects.filter(user=user, confirmed=True).select_for_update():
        if device.verify_token(code):  # deletes the matched code: each works once
            return device, "backup_code"
    return None, "backup_code"


def mfa_verify(*, user: User, code: str, client_ip: str | None) -> Device:
    """The second step. Returns the device that accepted the code, for django_otp.login()."""
    email = user.get_username()
    _refuse_if_locked(email=email, client_ip=client_ip, action="auth.mfa_verify", user=user)
    tenant = _home_tenant(user)
    # The refusal is raised after the block, so the failure count and its audit event are kept.
    with transaction.atomic():
        device, method = _match(user, _normalize_code(code))
        if device is None:
            throttle.record_failure(email=email, client_ip=client_ip)
            audit.record(
                actor=Actor.for_user(user),
                action="auth.mfa_verify",
                outcome=DENIED,
                target=user,
                tenant=tenant,
                reason="wrong or reused code",
                details={"method": method},
            )
        else:
            throttle.reset_account(email=email, client_ip=client_ip)
            details: dict[str, object] = {"method": method}
            if method == "backup_code":
                details["backup_codes_left"] = StaticToken.objects.filter(device=device).count()
            audit.record(
                actor=Actor.for_user(user),
                action="auth.mfa_verify",
                target=user,
                tenant=tenant,
                details=details,
            )
    if device is None:
        raise SignInRefused("That code is not valid. Enter the current code from your app.", code="code")
    return device


@transaction.atomic
def mfa_enrolment_device(*, user: User) -> TOTPDevice:
    """The unconfirmed authenticator being set up; the same secret across reloads of the page."""
    if has_confirmed_totp(user):
        raise Conflict("Two-factor authentication is already set up for this account.", code="enrolled")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def mfa_enrol_confirm(*, user: User, code: str, client_ip: str | None) -> Enrolment:
    """Confirm the authenticator with a first code, then issue fresh backup codes (shown once)."""
    email = user.get_username()
    _refuse_if_locked(email=email, client_ip=client_ip, action="mfa.enrol", user=user)
    tenant = _home_tenant(user)
    with transaction.atomic():
        device = mfa_enrolment_device(user=user)
        confirmed = device.verify_token(_normalize_code(code))
        if not confirmed:
            throttle.record_failure(email=email, client_ip=client_ip)
            audit.record(
                actor=Actor.for_user(user),
                action="mfa.enrol",
                outcome=DENIED,
                target=user,
                tenant=tenant,
                reason="wrong code",
            )
    if not confirmed:
        raise SignInRefused(
            "That code did not match. Check that your phone's clock is right and enter the current code.",
            code="code",
        )
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        throttle.reset_account(email=email, client_ip=client_ip)
        audit.record(
            actor=Actor.for_user(user),
            action="mfa.enrol",
            target=user,
            tenant=tenant,
            details={"device": device.persistent_id},
        )
        codes = backup_codes_generate(actor=Actor.for_user(user), user=user)
    return Enrolment(device, codes)


@transaction.atomic
def backup_codes_generate(*, actor: Actor, user: User) -> list[str]:
    """Replace the user's backup codes with ten new ones; only their plaintext return shows them."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="backup codes", confirmed=True)
    codes: set[str] = set()
    while len(codes) < BACKUP_CODE_COUNT:
        codes.add(StaticToken.random_token())
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    audit.record(
        actor=actor,
        action="mfa.backup_codes_generate",
        target=user,
        tenant=_home_tenant(user),
        details={"count": BACKUP_CODE_COUNT},
    )
    return sorted(codes)

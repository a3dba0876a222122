"""People in tenants: invitations, roles, deactivation, MFA resets, the tenant switcher, provisioning.

Sign-in and MFA verification live in healthmail.accounts.signin; API keys in healthmail.accounts.api_keys.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict, NotFound
from healthmail.sysmail.services import system_mail_queue
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .membership import memberships_of
from .models import Membership, User
from .roles import Role


def _normalized_email(email: str) -> str:
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError as error:
        raise ApplicationError("Enter a valid email address.", code="email") from error
    return email


def _valid_role(role: str) -> str:
    if role not in Role.values:
        raise ApplicationError("Choose one of the listed roles.", code="role")
    return role


def _password_problems(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise ApplicationError(" ".join(error.messages), code="password") from error


# --- invitations ------------------------------------------------------------------------------------


def invitation_link(user: User) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("accounts:invite_accept", kwargs={"uidb64": uidb64, "token": token})
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}"


def _queue_invitation(*, tenant: Tenant, user: User, membership: Membership) -> None:
    """Into the system-mail outbox, in the caller's transaction: the membership never waits on SMTP.

    The body holds a one-time password link: the outbox seals it with the tenant's key."""
    login_url = f"{settings.PUBLIC_BASE_URL.rstrip('/')}{reverse('accounts:login')}"
    if user.has_usable_password():
        body = (
            f"You were added to {tenant.name} on HealthMail.\n\n"
            f"Sign in with your existing password and authenticator app: {login_url}\n"
        )
    else:
        body = (
            f"You are invited to join {tenant.name} on HealthMail.\n\n"
            f"Choose your password here (the link works once, for 3 days):\n{invitation_link(user)}\n\n"
            "At your first sign-in you will set up an authenticator app for two-factor authentication.\n"
        )
    system_mail_queue(
        tenant=tenant,
        topic="accounts.invitation",
        subject=f"Your HealthMail invitation to {tenant.name}",
        body=body,
        users=[user],
        source_ids=[membership.pk],
    )


@transaction.atomic
def member_invite(*, actor: Actor, tenant: Tenant, email: str, role: str) -> Membership:
    """Add a person to the tenant (creating their account without a password) and email them."""
    email = _normalized_email(email)
    role = _valid_role(role)
    user = User.objects.filter(username=email).first()
    if user is not None and user.is_platform_admin:
        # Platform administrators see no PHI, ever; tenant work needs a separate account.
        raise ApplicationError(
            "A platform administrator account cannot join an organization.", code="platform"
        )
    created = user is None
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=email, password=None)
        except IntegrityError as error:
            raise Conflict("This person was just invited by someone else; reload.", code="race") from error
    with tenant_context(tenant):
        existing = Membership.objects.for_tenant(tenant).filter(user=user).first()
        if existing is not None:
            if existing.is_active:
                raise Conflict(f"{email} is already a member of {tenant.name}.", code="already_member")
            raise Conflict(
                f"{email} was deactivated; reactivate them from their page instead.",
                code="deactivated_member",
            )
        try:
            with transaction.atomic():
                membership = Membership.objects.create(
                    tenant=tenant, user=user, role=role, invited_by=actor.user
                )
        except IntegrityError as error:
            raise Conflict(f"{email} is already a member of {tenant.name}.", code="already_member") from error
        audit.record(
            actor=actor,
            action="member.invite",
            target=membership,
            tenant=tenant,
            details={"role": role, "new_account": created, "user": str(user.pk)},
        )
        _queue_invitation(tenant=tenant, user=user, membership=membership)
    return membership


@transaction.atomic
def member_invitation_resend(*, actor: Actor, tenant: Tenant, membership: Membership) -> None:
    if membership.user.has_usable_password():
        raise ApplicationError("This person has already chosen a password.", code="already_accepted")
    audit.record(actor=actor, action="member.invite_resend", target=membership, tenant=tenant)
    _queue_invitation(tenant=tenant, user=membership.user, membership=membership)


def invitation_user(*, uidb64: str, token: str) -> User | None:
    """The invited person if the link is genuine, unexpired and unused; else None."""
    try:
        user = User.objects.filter(pk=uuid.UUID(force_str(urlsafe_base64_decode(uidb64)))).first()
    except (ValueError, TypeError):
        return None
    if user is None or not user.is_active or user.has_usable_password():
        return None
    return user if default_token_generator.check_token(user, token) else None


@transaction.atomic
def invitation_accept(*, user: User, password: str) -> User:
    """Set the first password. Setting it invalidates the link (the token covers the password hash)."""
    if user.has_usable_password():
        raise Conflict("This invitation was already used. Sign in instead.", code="used")
    _password_problems(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    memberships = memberships_of(user)
    audit.record(
        actor=Actor.for_user(user),
        action="auth.invite_accept",
        target=user,
        tenant=memberships[0].tenant if memberships else None,
    )
    return user


# --- roles and deactivation ------------------------------------------------------------------------


def _keep_an_admin(*, actor: Actor, tenant: Tenant, membership: Membership) -> None:
    """Refuse to remove the last active tenant admin. Locking the admin rows serializes two admins
    demoting each other at the same moment, which would otherwise leave none."""
    admins = list(
        Membership.objects.for_tenant(tenant)
        .filter(role=Role.TENANT_ADMIN, is_active=True)
        .select_for_update()
        .order_by("pk")
    )
    if membership.pk in {m.pk for m in admins} and len(admins) == 1:
        who = (
            "You are" if actor.user is not None and actor.user.pk == membership.user_id else "This person is"
        )
        raise Conflict(
            f"{who} the last active tenant admin of {tenant.name}. Make someone else a tenant admin first.",
            code="last_admin",
        )


@transaction.atomic
def member_change_role(*, actor: Actor, tenant: Tenant, membership: Membership, role: str) -> Membership:
    role = _valid_role(role)
    with tenant_context(tenant):
        membership = Membership.objects.for_tenant(tenant).select_for_update().get(pk=membership.pk)
        if membership.role == role:
            raise ApplicationError(f"This person already has the role {Role(role).label}.", code="same_role")
        if membership.role == Role.TENANT_ADMIN:
            _keep_an_admin(actor=actor, tenant=tenant, membership=membership)
        previous = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit.record(
            actor=actor,
            action="member.role_change",
            target=membership,
            tenant=tenant,
            details={"from": previous, "to": role, "user": str(membership.user_id)},
        )
    return membership


@transaction.atomic
def member_deactivate(
    *, actor: Actor, tenant: Tenant, membership: Membership, reason: str = ""
) -> Membership:
    """The person's next request in this tenant is refused (memberships are checked on every request)."""
    with tenant_context(tenant):
        membership = Membership.objects.for_tenant(tenant).select_for_update().get(pk=membership.pk)
        if not membership.is_active:
            raise ApplicationError("This person is already deactivated.", code="already_inactive")
        if membership.role == Role.TENANT_ADMIN:
            _keep_an_admin(actor=actor, tenant=tenant, membership=membership)
        membership.is_active = False
        membership.save(update_fields=["is_active"])
        audit.record(
            actor=actor,
            action="member.deactivate",
            target=membership,
            tenant=tenant,
            reason=reason,
            details={"user": str(membership.user_id)},
        )
    return membership


@transaction.atomic
def member_reactivate(*, actor: Actor, tenant: Tenant, membership: Membership) -> Membership:
    with tenant_context(tenant):
        updated = (
            Membership.objects.for_tenant(tenant)
            .filter(pk=membership.pk, is_active=False)
            .update(is_active=True)
        )
        if updated != 1:
            raise ApplicationError("This person is already active.", code="already_active")
        membership.refresh_from_db()
        audit.record(
            actor=actor,
            action="member.reactivate",
            target=membership,
            tenant=tenant,
            details={"user": str(membership.user_id)},
        )
    return membership


@transaction.atomic
def mfa_reset(*, actor: Actor, tenant: Tenant, membership: Membership, reason: str) -> int:
    """Remove the person's authenticator and backup codes; they enrol again at their next sign-in.

    Their current sessions stop being verified at once (the session's device no longer exists)."""
    if not reason.strip():
        raise ApplicationError(
            "Give a reason for the reset (e.g. the ticket number).", code="reason_required"
        )
    user = membership.user
    if actor.user is not None and actor.user.pk == user.pk:
        raise ApplicationError(
            "You cannot reset your own two-factor authentication; ask another admin.", code="self_reset"
        )
    if user.is_platform_admin:
        raise ApplicationError(
            "A platform administrator's two-factor authentication is reset by the "
            "platform operators, not by a tenant.",
            code="platform_admin",
        )
    removed: int = (  # django_otp has no types: its delete() counts come back as Any
        TOTPDevice.objects.filter(user=user).delete()[0] + StaticDevice.objects.filter(user=user).delete()[0]
    )
    audit.record(
        actor=actor,
        action="mfa.reset",
        target=membership,
        tenant=tenant,
        reason=reason.strip(),
        details={"user": str(user.pk), "removed": removed},
    )
    return removed


# --- the tenant switcher ---------------------------------------------------------------------------


def tenant_switch(*, actor: Actor, user: User, tenant_id: str) -> Membership:
    """Only to a tenant where the person has an active membership; anything else is 'not found'.

    Not atomic on purpose: the refusal's audit event must survive the NotFound raised after it."""
    for membership in memberships_of(user):
        if str(membership.tenant_id) == str(tenant_id):
            audit.record(
                actor=actor, action="tenant.switch", target=membership.tenant, tenant=membership.tenant
            )
            return membership
    audit.record(
        actor=actor,
        action="tenant.switch",
        outcome=audit.DENIED,
        reason="not a member",
        details={"requested": str(tenant_id)[:64]},
    )
    raise NotFound("You are not a member of that organization.", code="not_member")


# --- provisioning (manage.py create_user) ----------------------------------------------------------


@transaction.atomic
def user_provision(
    *,
    actor: Actor,
    email: str,
    password: str,
    tenant: Tenant | None = None,
    role: str | None = None,
    platform_admin: bool = False,
) -> tuple[User, TOTPDevice]:
    """Create a person ready to sign in: password, a confirmed authenticator and (unless platform
    admin) a membership. The caller shows the device's provisioning URI once."""
    if platform_admin == (tenant is not None):
        raise ApplicationError("Give either a tenant and role, or platform admin.", code="usage")
    email = _normalized_email(email)
    if User.objects.filter(username=email).exists():
        raise Conflict(f"An account for {email} already exists.", code="exists")
    membership_role = _valid_role(role or "") if tenant is not None else ""
    _password_problems(password, User(username=email, email=email))
    user = User.objects.create_user(email=email, password=password, is_platform_admin=platform_admin)
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    if tenant is not None:
        with tenant_context(tenant):
            membership = Membership.objects.create(tenant=tenant, user=user, role=membership_role)
            audit.record(
                actor=actor,
                action="user.provision",
                target=membership,
                tenant=tenant,
                details={"role": membership_role, "user": str(user.pk)},
            )
    else:
        audit.record(actor=actor, action="user.provision", target=user, details={"platform_admin": True})
    return user, device

"""Public portal pages under /p/portal/ (no login). The link alone shows only the organization's name:
the reader proves they hold the address (one-time code) or a registered passphrase first, and the
verified session is scoped to that one message and short-lived."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit import services as audit
from audit.models import AuditEvent
from healthmail.actors import Actor
from healthmail.content_policy import email_preview_policy
from healthmail.errors import ApplicationError
from healthmail.observability import client_ip
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import PortalMessage
from ..patient_mail import PatientMailUnavailable
from . import services, verification
from .links import portal_frame_html, portal_link_target
from .services import PortalGone, PortalLinkInvalid, PortalThrottled

SESSION_KEY = "portal_verified"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="One-time code",
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class PassphraseForm(forms.Form):
    passphrase = forms.CharField(label="Passphrase", max_length=200, widget=forms.PasswordInput)


class NewPassphraseForm(forms.Form):
    passphrase = forms.CharField(
        label="New passphrase",
        min_length=services.MIN_PASSPHRASE_CHARS,
        max_length=200,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=f"At least {services.MIN_PASSPHRASE_CHARS} characters; next time it replaces the code.",
    )


class ReplyForm(forms.Form):
    body = forms.CharField(
        label="Your reply", max_length=services.MAX_REPLY_CHARS, widget=forms.Textarea(attrs={"rows": 6})
    )


def _private(response: HttpResponse) -> HttpResponse:
    # The token in the URL must not leak through Referer headers to other sites (same-origin keeps the
    # Origin header the CSRF check needs), shared caches or search engines.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _problem(request: HttpRequest, error: ApplicationError, tenant: Tenant | None) -> HttpResponse:
    context = {"org": tenant, "title": error.title, "message": error.message}
    return render(request, "delivery/portal/problem.html", context, status=error.status_code)


def is_verified(request: HttpRequest, portal_message: PortalMessage) -> bool:
    expiry = request.session.get(SESSION_KEY, {}).get(str(portal_message.pk), 0)
    return expiry > time.time()


def _mark_verified(request: HttpRequest, portal_message: PortalMessage) -> None:
    request.session.cycle_key()  # a new session id once verified: no fixation
    verified = {k: v for k, v in request.session.get(SESSION_KEY, {}).items() if v > time.time()}
    verified[str(portal_message.pk)] = time.time() + services.VERIFIED_SESSION_SECONDS
    request.session[SESSION_KEY] = verified


def portal_page(view: Callable) -> Callable:
    """Resolve the link inside its tenant's context; a bad, expired or withdrawn link gets a clear page."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, token: str, **kwargs) -> HttpResponse:
        tenant = None
        try:
            tenant_id = services.portal_token_tenant(token)
            tenant = Tenant.objects.filter(pk=tenant_id).first()
            if tenant is None:
                raise PortalLinkInvalid(services._LINK_INVALID, code="portal_tenant_unknown")
            with tenant_context(tenant):
                portal_message = services.portal_message_by_token(tenant_id=tenant.pk, token=token)
                try:
                    services.portal_available(portal_message)
                    response = view(
                        request, tenant=tenant, portal_message=portal_message, token=token, **kwargs
                    )
                except (PortalGone, PortalThrottled) as error:
                    # Caught inside the tenant's transaction, so the refusal's audit event is kept.
                    response = _problem(request, error, tenant)
        except PortalLinkInvalid as error:
            audit.record(
                actor=Actor.anonymous(),
                action="portal.link_rejected",
                tenant=tenant,
                outcome=AuditEvent.Outcome.DENIED,
                reason=error.code,
            )
            response = _problem(request, error, None)  # an unknown link shows no organization either
        return _private(response)

    return wrapper


def _verify_page(request, tenant, portal_message, token, *, code_form=None, passphrase_form=None, status=200):
    context = {
        "org": tenant,
        "token": token,
        "code_form": code_form or CodeForm(),
        "passphrase_form": passphrase_form or PassphraseForm(),
        "has_passphrase": bool(portal_message.passphrase_hash),
        "code_sent": request.GET.get("sent") == "1",
    }
    return render(request, "delivery/portal/verify.html", context, status=status)


@email_preview_policy
@require_GET
@portal_page
def landing(request: HttpRequest, *, tenant, portal_message, token) -> HttpResponse:
    if not is_verified(request, portal_message):
        return _verify_page(request, tenant, portal_message, token)
    content = services.portal_open(portal_message=portal_message)
    context = {
        "org": tenant,
        "token": token,
        "content": content,
        "frame_html": portal_frame_html(html=content.html, token=token),
        "portal_message": portal_message,
        "reply_form": ReplyForm(),
        "passphrase_form": NewPassphraseForm(),
    }
    return render(request, "delivery/portal/message.html", context)


@require_POST
@portal_page
def code_send(request: HttpRequest, *, tenant, portal_message, token) -> HttpResponse:
    try:
        verification.portal_code_send(portal_message=portal_message, ip=client_ip(request))
    except PatientMailUnavailable as error:
        return _problem(request, error, tenant)
    return redirect(f"{request.path.rsplit('code/', 1)[0]}?sent=1")


@require_POST
@portal_page
def verify(request: HttpRequest, *, tenant, portal_message, token) -> HttpResponse:
    ip = client_ip(request)
    code_form, passphrase_form = CodeForm(), PassphraseForm()
    try:
        if "passphrase" in request.POST:
            passphrase_form = PassphraseForm(request.POST)
            if not passphrase_form.is_valid():
                return _verify_page(
                    request, tenant, portal_message, token, passphrase_form=passphrase_form, status=400
                )
            verification.portal_passphrase_verify(
                portal_message=portal_message, passphrase=passphrase_form.cleaned_data["passphrase"], ip=ip
            )
        else:
            code_form = CodeForm(request.POST)
            if not code_form.is_valid():
                return _verify_page(request, tenant, portal_message, token, code_form=code_form, status=400)
            verification.portal_code_verify(
                portal_message=portal_message, code=code_form.cleaned_data["code"], ip=ip
            )
    except services.PortalVerificationFailed as error:
        # Tied to the field the patient typed into, so it is announced with it (WCAG 3.3.1).
        if "passphrase" in request.POST:
            passphrase_form.add_error("passphrase", error.message)
        else:
            code_form.add_error("code", error.message)
        return _verify_page(
            request,
            tenant,
            portal_message,
            token,
            code_form=code_form,
            passphrase_form=passphrase_form,
            status=400,
        )
    _mark_verified(request, portal_message)
    return redirect("portal:landing", token=token)


def _require_verified(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(request, *, tenant, portal_message, token, **kwargs):
        if not is_verified(request, portal_message):
            messages.info(request, "Please confirm it is you first.")
            return redirect("portal:landing", token=token)
        return view(request, tenant=tenant, portal_message=portal_message, token=token, **kwargs)

    return wrapper


@require_POST
@portal_page
@_require_verified
def reply(request: HttpRequest, *, tenant, portal_message, token) -> HttpResponse:
    form = ReplyForm(request.POST)
    if form.is_valid():
        try:
            services.portal_reply(portal_message=portal_message, body=form.cleaned_data["body"])
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Your reply was sent securely to {tenant.name}.")
    else:
        messages.error(request, "Write a reply (at most 10,000 characters) before sending.")
    return redirect("portal:landing", token=token)


@require_POST
@portal_page
@_require_verified
def passphrase(request: HttpRequest, *, tenant, portal_message, token) -> HttpResponse:
    form = NewPassphraseForm(request.POST)
    if form.is_valid():
        verification.portal_passphrase_set(
            portal_message=portal_message, passphrase=form.cleaned_data["passphrase"]
        )
        messages.success(request, "Your passphrase is saved. Next time you can use it instead of a code.")
    else:
        messages.error(request, str(form.errors["passphrase"][0]))
    return redirect("portal:landing", token=token)


@require_http_methods(["GET"])
@portal_page
@_require_verified
def attachment(request: HttpRequest, *, tenant, portal_message, token, index: int) -> HttpResponse:
    content = services.portal_open(
        portal_message=portal_message, purpose="portal attachment", count_read=False
    )
    if index >= len(content.attachments):
        return _problem(request, PortalLinkInvalid("No such attachment.", code="attachment_unknown"), tenant)
    item = content.attachments[index]
    response = HttpResponse(item.data, content_type="application/octet-stream")
    # Always a download, never rendered inline on our origin; the name is sanitised to ASCII.
    safe = "".join(ch for ch in item.filename if ch.isascii() and (ch.isalnum() or ch in "._- "))[:100]
    response["Content-Disposition"] = f'attachment; filename="{safe or "attachment"}"'
    return response


@require_http_methods(["GET"])
@portal_page
@_require_verified
def link(request: HttpRequest, *, tenant, portal_message, token, index: int) -> HttpResponse:
    """A link of the message, opened from the frame in a new tab: only the message's own web links."""
    content = services.portal_open(portal_message=portal_message, purpose="portal link", count_read=False)
    url = portal_link_target(html=content.html, index=index)
    if url is None:
        return _problem(
            request, PortalLinkInvalid("No such link in this message.", code="link_unknown"), tenant
        )
    audit.record(
        actor=services.recipient(portal_message),
        action="portal.link_open",
        target=portal_message,
        tenant=tenant,
        details={"link": index},
    )
    return HttpResponseRedirect(url)

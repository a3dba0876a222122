"""Patient pages reached by signed, expiring links (no login): sign an authorization, the preference
center, one-click unsubscribe (RFC 8058). Each page shows the tenant's name and postal address and
nothing about anyone until the link verifies; a bad link gets a short friendly page, audited."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from audit import services as audit
from audit.models import AuditEvent
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import copies, mailbox, services, waivers
from .authorizations import authorization_copy_delivered, authorization_revoke, authorization_sign
from .evidence import Evidence, recipient_actor
from .forms import PreferencesForm, SignForm, WaiverForm
from .models import Authorization, AuthorizationText, ConsentText, MailboxCheck, Source, Topic
from .services import contact_rule
from .tokens import Link, LinkExpired, LinkInvalid, LinkKind, link_read, link_token

_NOT_VALID = "This link is no longer valid. Please ask the organization that sent it for a new one."


def _private(response: HttpResponse) -> HttpResponse:
    # The token in the URL must not travel to other sites in Referer headers (same-origin keeps the
    # Origin header our CSRF check needs), land in shared caches or search engines.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _refused(request: HttpRequest, error: ApplicationError, kind: str) -> HttpResponse:
    audit.record(
        actor=Actor.anonymous(),
        action="consent.link_rejected",
        outcome=AuditEvent.Outcome.DENIED,
        tenant=getattr(error, "tenant_id", None),
        reason=error.code,
        details={"link": kind},
    )
    context = {"title": error.title, "message": error.message}
    return _private(render(request, "consent/public_error.html", context, status=error.status_code))


def _resolve(kind: str, token: str) -> tuple[Link, Tenant, Contact]:
    link = link_read(kind, token)
    tenant = Tenant.objects.filter(pk=link.tenant_id).first()
    if tenant is None:
        raise LinkInvalid(_NOT_VALID, code="link_tenant_gone")
    with tenant_context(tenant):
        contact = (
            Contact.objects.for_tenant(tenant).filter(pk=link.contact_id, deleted_at__isnull=True).first()
        )
    if contact is None:
        raise LinkInvalid(_NOT_VALID, code="link_contact_gone")
    return link, tenant, contact


def public_page(kind: str) -> Callable:
    """Verify the link, then run the view inside the link's tenant context."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, token: str) -> HttpResponse:
            try:
                link, tenant, contact = _resolve(kind, token)
            except (LinkInvalid, LinkExpired) as error:
                return _refused(request, error, kind)
            with tenant_context(tenant):
                return _private(view(request, link=link, tenant=tenant, contact=contact, token=token))

        return wrapper

    return decorator


def _page(request, template: str, tenant: Tenant, status: int = 200, **context) -> HttpResponse:
    return render(request, template, {"org": tenant, **context}, status=status)


# --- Sign an authorization ---------------------------------------------------------------------


def _preferences_path(link: Link) -> str:
    token = link_token(LinkKind.PREFERENCES, tenant_id=link.tenant_id, contact_id=link.contact_id)
    return reverse("consent_public:preferences", args=[token])


# Which field of the signing form each signature defect belongs to (the rest are about the document).
_DEFECT_FIELDS = {
    "missing_signature": "signer_name",
    "missing_signature_date": "signed_on",
    "signature_date_in_future": "signed_on",
    "signature_date_not_today": "signed_on",
    "missing_intent": "intent",
    "missing_representative_authority": "representative_authority",
}


@require_http_methods(["GET", "POST"])
@public_page(LinkKind.AUTHORIZE)
def authorize(
    request: HttpRequest, *, link: Link, tenant: Tenant, contact: Contact, token: str
) -> HttpResponse:
    text = (
        AuthorizationText.objects.for_tenant(tenant).filter(pk=link.text_id).first()
        if link.text_id is not None
        else None
    )
    if text is None:
        return _refused(request, LinkInvalid(_NOT_VALID, code="link_text_gone"), LinkKind.AUTHORIZE)
    signed = Authorization.objects.for_tenant(tenant).filter(submission_key=link.nonce).first()
    if signed is not None:
        # Signed already (this is also where a double submission lands): never a second signature.
        return _page(
            request,
            "consent/public_signed.html",
            tenant,
            authorization=signed,
            text=text,
            notices=_state_notices(tenant, contact, text),
            preferences_path=_preferences_path(link),
            copy_path=reverse("consent_public:authorization_copy", args=[token]),
        )
    today = timezone.localdate()
    form = SignForm(request.POST or None, initial={"signed_on": today})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            signed, created = authorization_sign(
                tenant=tenant,
                contact=contact,
                text=text,
                signer_name=data["signer_name"],
                signed_on=data["signed_on"],
                intent_confirmed=data["intent"],
                by_representative=data["by_representative"],
                representative_authority=data["representative_authority"],
                evidence=Evidence.from_request(request, actor=recipient_actor(contact)),
                submission_key=link.nonce,
            )
        except ApplicationError as error:
            for defect in error.extra.get("defects") or [{"code": error.code, "message": error.message}]:
                field = _DEFECT_FIELDS.get(defect["code"])
                form.add_error(field if field in form.fields else None, defect["message"])
        else:
            if created:
                copies.authorization_copy_send(tenant=tenant, authorization=signed)
            return redirect(request.path)
    rule = contact_rule(tenant=tenant, contact=contact)
    return _page(
        request,
        "consent/public_authorize.html",
        tenant,
        status=400 if form.is_bound else 200,
        form=form,
        text=text,
        rule=rule,
        notices=_state_notices(tenant, contact, text),
        minor=contact.is_minor,
    )


def _state_notices(tenant: Tenant, contact: Contact, text: AuthorizationText) -> list[str]:
    """The notices the state rules that apply to this person require on the form, beyond those
    already printed in the document (a state added after it was published, the person's own state)."""
    rule = contact_rule(tenant=tenant, contact=contact)
    return [notice for notice in rule.disclosures if notice not in text.state_disclosures]


@require_http_methods(["GET"])
@public_page(LinkKind.AUTHORIZE)
def authorization_copy(
    request: HttpRequest, *, link: Link, tenant: Tenant, contact: Contact, token: str
) -> HttpResponse:
    """The signed document, for the individual to keep (45 CFR 164.508(c)(4))."""
    signed = (
        Authorization.objects.for_tenant(tenant)
        .filter(submission_key=link.nonce, contact=contact)
        .select_related("text")
        .first()
    )
    if signed is None:
        return _refused(request, LinkInvalid(_NOT_VALID, code="authorization_not_signed"), LinkKind.AUTHORIZE)
    actor = recipient_actor(contact)
    authorization_copy_delivered(
        tenant=tenant, authorization=signed, evidence=Evidence.from_request(request, actor=actor)
    )
    body = copies.authorization_copy_text(tenant=tenant, authorization=signed, actor=actor)
    response = HttpResponse(body, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="authorization-{signed.signed_on:%Y-%m-%d}.txt"'
    return response


# --- Preference center -----------------------------------------------------------------------------


def _preference_context(tenant: Tenant, contact: Contact) -> dict:
    services.topics_ensure_system(tenant=tenant)
    states = services.topic_states(tenant=tenant, contact=contact)
    topics = list(Topic.objects.for_tenant(tenant).order_by("purpose", "-is_system", "name"))
    preference = services.preference_get(tenant=tenant, contact=contact)
    settings = services.consent_settings_get(tenant=tenant)
    rule = contact_rule(tenant=tenant, contact=contact)
    initial: dict[str, object] = {
        f"topic_{t.key}": services.topic_receiving(t, states.get(t.pk), rule) for t in topics
    }
    initial.update(frequency=preference.frequency, paused_until=preference.paused_until)
    return {
        "topics": topics,
        "initial": initial,
        "authorizations": list(
            Authorization.objects.for_tenant(tenant)
            .filter(contact=contact, status="valid")
            .select_related("text")
        ),
        "waiver": waivers.waiver_active(tenant=tenant, contact=contact),
        "waiver_check": mailbox.mailbox_check_pending(
            tenant=tenant, contact=contact, action=MailboxCheck.Action.WAIVER_REQUEST
        ),
        "waivers_allowed": settings.allow_unencrypted_waivers,
        "risk_text": services.consent_text_current(tenant=tenant, kind=ConsentText.Kind.UNENCRYPTED_WAIVER)
        if settings.allow_unencrypted_waivers
        else None,
        "intro": services.consent_text_current(tenant=tenant, kind=ConsentText.Kind.PREFERENCE_CENTER),
        "disclosures": rule.disclosures,
    }


@require_http_methods(["GET", "POST"])
@public_page(LinkKind.PREFERENCES)
def preferences(
    request: HttpRequest, *, link: Link, tenant: Tenant, contact: Contact, token: str
) -> HttpResponse:
    context = _preference_context(tenant, contact)
    form = PreferencesForm(topics=context["topics"], initial=context["initial"])
    waiver_form = WaiverForm()
    waiver_error, status_code = "", 400
    action = request.POST.get("action", "")
    evidence = Evidence.from_request(request, actor=recipient_actor(contact), text=context["intro"])
    try:
        if action == "save":
            form = PreferencesForm(request.POST, topics=context["topics"])
            if form.is_valid():
                services.preferences_apply(
                    tenant=tenant,
                    contact=contact,
                    topics=form.chosen_topics(),
                    frequency=form.cleaned_data["frequency"],
                    paused_until=form.cleaned_data["paused_until"],
                    evidence=evidence,
                )
                messages.success(request, "Your preferences are saved.")
                return redirect(request.path)
        elif action == "unsubscribe_all":
            services.unsubscribe(tenant=tenant, contact=contact, topic=None, evidence=evidence)
            messages.success(request, "You are unsubscribed from all of these emails.")
            return redirect(request.path)
        elif action == "revoke":
            return _revoke(request, tenant, contact, evidence)
        elif action == "waiver_request":
            # Holding this link proves nothing about the mailbox (footers are forwarded and scanned):
            # nothing changes until the code sent to the address on file comes back.
            waiver_form = WaiverForm(request.POST)
            if waiver_form.is_valid():
                waivers.waiver_request_start(
                    tenant=tenant,
                    contact=contact,
                    purposes=waiver_form.cleaned_data["purposes"],
                    evidence=Evidence.from_request(
                        request, actor=recipient_actor(contact), text=context["risk_text"]
                    ),
                )
                messages.info(
                    request,
                    "We sent a one-time code to your email address. Enter it below to confirm; "
                    "nothing changes until you do.",
                )
                return redirect(request.path)
        elif action == "waiver_confirm":
            waivers.waiver_request_confirm(
                tenant=tenant, contact=contact, code=request.POST.get("code", ""), evidence=evidence
            )
            messages.success(
                request, "Your request is recorded. We sent a confirmation to your email address."
            )
            return redirect(request.path)
        elif action == "waiver_withdraw":
            waivers.waiver_withdraw(tenant=tenant, contact=contact, evidence=evidence)
            messages.success(request, "Your request is withdrawn: email will be protected again.")
            return redirect(request.path)
    except ApplicationError as error:
        if action.startswith("waiver_"):
            waiver_error, status_code = error.message, error.status_code
        else:
            form.add_error(None, error.message)
    status = (status_code if waiver_error else 400) if request.method == "POST" else 200
    return _page(
        request,
        "consent/public_preferences.html",
        tenant,
        status=status,
        form=form,
        waiver_form=waiver_form,
        waiver_error=waiver_error,
        **context,
    )


def _revoke(request: HttpRequest, tenant: Tenant, contact: Contact, evidence: Evidence) -> HttpResponse:
    try:
        authorization_id = uuid.UUID(request.POST.get("authorization", ""))
    except ValueError:
        authorization_id = None
    authorization = (
        Authorization.objects.for_tenant(tenant).filter(pk=authorization_id, contact=contact).first()
        if authorization_id
        else None
    )
    if authorization is None:
        error = LinkInvalid("That authorization was not found.", code="authorization_not_found")
        return _page(
            request, "consent/public_error.html", tenant, status=404, title="Not found", message=error.message
        )
    if authorization_revoke(tenant=tenant, authorization=authorization, evidence=evidence):
        messages.success(request, "Your authorization is revoked. It no longer allows anything from now on.")
    else:
        messages.info(request, "This authorization was already no longer in force.")
    return redirect(request.path)


# --- One-click unsubscribe (RFC 8058) ------------------------------------------------------------------


@csrf_exempt  # RFC 8058 section 3.1: the mail client's POST carries no cookies and no CSRF token
@require_http_methods(["GET", "POST"])
@public_page(LinkKind.UNSUBSCRIBE)
def unsubscribe(
    request: HttpRequest, *, link: Link, tenant: Tenant, contact: Contact, token: str
) -> HttpResponse:
    topic = Topic.objects.for_tenant(tenant).filter(key=link.topic_key).first() if link.topic_key else None
    preferences_path = _preferences_path(link)
    if request.method == "GET":
        # Never unsubscribe on GET: link scanners and previews open URLs (RFC 8058 section 1).
        return _page(
            request, "consent/public_unsubscribe.html", tenant, topic=topic, preferences_path=preferences_path
        )
    if request.POST.get("List-Unsubscribe") != "One-Click":
        error = LinkInvalid("This request is incomplete.", code="one_click_body_missing")
        return _page(
            request, "consent/public_error.html", tenant, status=400, title=error.title, message=error.message
        )
    evidence = Evidence.from_request(request, actor=recipient_actor(contact), source=Source.WEB_FORM)
    services.unsubscribe(tenant=tenant, contact=contact, topic=topic, evidence=evidence)
    return _page(
        request, "consent/public_unsubscribed.html", tenant, topic=topic, preferences_path=preferences_path
    )


# --- Undo a waiver, from the confirmation mail -------------------------------------------------------


@require_http_methods(["GET", "POST"])
@public_page(LinkKind.WAIVER_UNDO)
def waiver_undo(
    request: HttpRequest, *, link: Link, tenant: Tenant, contact: Contact, token: str
) -> HttpResponse:
    # One click, but a POST: link scanners open every URL in a mail and must not undo anything.
    if request.method == "GET":
        active = waivers.waiver_active(tenant=tenant, contact=contact)
        pending = active is not None and active.pk == link.text_id
        return _page(request, "consent/public_waiver_undo.html", tenant, pending=pending)
    evidence = Evidence.from_request(request, actor=recipient_actor(contact))
    waivers.waiver_undo(tenant=tenant, contact=contact, waiver_id=link.text_id, evidence=evidence)
    return _page(request, "consent/public_waiver_undo.html", tenant, pending=False, undone=True)

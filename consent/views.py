"""Staff consent pages: a contact's consent history, authorization texts, the suppression list,
consent settings and topics, and the consent reports. Parse, authorize, one service, render."""

from __future__ import annotations

import datetime
import uuid

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit import services as audit
from contacts.models import Contact
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, no_store, require_permission
from healthmail.disclosure import Viewer, shows_aggregates
from healthmail.errors import ApplicationError

from . import authorization_records as records
from . import authorizations, links, selectors, services, state_rules, suppressions, waivers
from .forms import (
    AuthorizationRecordForm,
    AuthorizationTextForm,
    ConsentRecordForm,
    ConsentSettingsForm,
    SigningLinkForm,
    SuppressionAddForm,
    SuppressionRemoveForm,
    TopicForm,
    WaiverRecordForm,
)
from .models import Authorization, AuthorizationText, ContactPreference, Source, Suppression, Topic
from .services import Evidence


def _contact(request: TenantRequest, contact_id: uuid.UUID) -> Contact:
    return get_object_or_404(Contact, tenant=request.tenant, pk=contact_id, deleted_at__isnull=True)


def _authorization(request: TenantRequest, contact: Contact, authorization_id: uuid.UUID) -> Authorization:
    return get_object_or_404(Authorization, tenant=request.tenant, contact=contact, pk=authorization_id)


# --- A contact's consent --------------------------------------------------------------------------


@require_permission("contacts.view_masked")
def contact_consent(request: TenantRequest, contact_id: uuid.UUID) -> HttpResponse:
    contact = _contact(request, contact_id)
    tenant = request.tenant
    services.topics_ensure_system(tenant=tenant)
    manage = role_can(request.role, "consent.manage")
    context = {
        "contact": contact,
        "timeline": selectors.contact_timeline(tenant=tenant, contact=contact),
        "topic_states": selectors.contact_topic_states(tenant=tenant, contact=contact),
        "authorizations": Authorization.objects.for_tenant(tenant)
        .filter(contact=contact)
        .select_related("text"),
        "marketing_standing": selectors.contact_authorization_standing(tenant=tenant, contact=contact),
        # The day an authorization ended is a date about the person: PHI, shown unmasked only to
        # roles that may see PHI.
        "show_dates": role_can(request.role, "contacts.view_phi"),
        "suppressions": suppressions.suppressions_active(tenant=tenant, contact=contact),
        "preference": ContactPreference.objects.for_tenant(tenant).filter(contact=contact).first(),
        "waiver": waivers.waiver_active(tenant=tenant, contact=contact),
        "manage": manage,
        "record_form": ConsentRecordForm(tenant=tenant) if manage else None,
        "link_form": SigningLinkForm(tenant=tenant) if manage else None,
        "authorization_form": AuthorizationRecordForm(tenant=tenant) if manage else None,
        "waiver_form": WaiverRecordForm()
        if manage and services.consent_settings_get(tenant=tenant).allow_unencrypted_waivers
        else None,
    }
    return render(request, "consent/contact_consent.html", context)


@require_POST
@require_permission("consent.manage")
def contact_consent_record(request: TenantRequest, contact_id: uuid.UUID) -> HttpResponse:
    contact = _contact(request, contact_id)
    form = ConsentRecordForm(request.POST, tenant=request.tenant)
    if not form.is_valid():
        messages.error(
            request,
            "The consent change is incomplete: "
            + "; ".join(str(e) for errors in form.errors.values() for e in errors),
        )
        return redirect("consent:contact_consent", contact_id=contact.pk)
    data = form.cleaned_data
    occurred_at = datetime.datetime.combine(data["occurred_on"], datetime.time(12), tzinfo=datetime.UTC)
    evidence = Evidence(
        source=data["source"], actor=actor_of(request), occurred_at=min(occurred_at, timezone.now())
    )
    services.consent_record(
        tenant=request.tenant, contact=contact, topic=data["topic"], kind=data["action"], evidence=evidence
    )
    messages.success(
        request,
        f"Recorded: {data['topic'].name} — {'opted in' if data['action'] == 'granted' else 'opted out'}.",
    )
    return redirect("consent:contact_consent", contact_id=contact.pk)


@require_POST
@require_permission("consent.manage")
def contact_waiver_record(request: TenantRequest, contact_id: uuid.UUID) -> HttpResponse:
    contact = _contact(request, contact_id)
    form = WaiverRecordForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(
            request,
            "The waiver is incomplete: "
            + "; ".join(str(e) for errors in form.errors.values() for e in errors),
        )
        return redirect("consent:contact_consent", contact_id=contact.pk)
    data = form.cleaned_data
    upload = data["document"]
    document = (
        waivers.ScannedDocument(
            name=upload.name, content_type=upload.content_type or "", content=upload.read()
        )
        if upload
        else None
    )
    try:
        waivers.waiver_record(
            tenant=request.tenant,
            actor=actor_of(request),
            contact=contact,
            purposes=data["purposes"],
            source=data["source"],
            received_on=data["received_on"],
            document=document,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The waiver is recorded.")
    return redirect("consent:contact_consent", contact_id=contact.pk)


@require_POST
@require_permission("consent.manage")
def contact_authorization_revoke(
    request: TenantRequest, contact_id: uuid.UUID, authorization_id: uuid.UUID
) -> HttpResponse:
    """Staff record a revocation the patient sent in writing (164.508(b)(5) requires writing)."""
    contact = _contact(request, contact_id)
    authorization = _authorization(request, contact, authorization_id)
    evidence = Evidence(source=Source.PAPER, actor=actor_of(request))
    if authorizations.authorization_revoke(
        tenant=request.tenant, authorization=authorization, evidence=evidence
    ):
        messages.success(request, "The authorization is revoked.")
    else:
        messages.info(request, "The authorization was already no longer in force.")
    return redirect("consent:contact_consent", contact_id=contact.pk)


@require_POST
@require_permission("consent.manage")
def contact_authorization_end(
    request: TenantRequest, contact_id: uuid.UUID, authorization_id: uuid.UUID
) -> HttpResponse:
    """Staff record that the expiration event occurred, or that the form is known to be false."""
    contact = _contact(request, contact_id)
    authorization = _authorization(request, contact, authorization_id)
    evidence = Evidence(source=Source.PAPER, actor=actor_of(request))
    try:
        if request.POST.get("reason") == "known_false":
            changed = authorizations.authorization_mark_false(
                tenant=request.tenant, authorization=authorization, evidence=evidence
            )
        else:
            occurred_on = datetime.date.fromisoformat(request.POST.get("occurred_on", ""))
            changed = authorizations.authorization_end_event_record(
                tenant=request.tenant, authorization=authorization, occurred_on=occurred_on, evidence=evidence
            )
    except ValueError:
        messages.error(request, "Give the day the event occurred.")
        return redirect("consent:contact_consent", contact_id=contact.pk)
    except ApplicationError as refused:
        messages.error(request, refused.message)
        return redirect("consent:contact_consent", contact_id=contact.pk)
    if changed:
        messages.success(request, "Recorded: the authorization no longer allows anything.")
    else:
        messages.info(request, "The authorization was already no longer in force.")
    return redirect("consent:contact_consent", contact_id=contact.pk)


@require_POST
@require_permission("consent.manage")
def contact_authorization_record(request: TenantRequest, contact_id: uuid.UUID) -> HttpResponse:
    """Staff record a form signed on paper or elsewhere; every defect is reported at once."""
    contact = _contact(request, contact_id)
    form = AuthorizationRecordForm(request.POST, request.FILES, tenant=request.tenant)
    if not form.is_valid():
        messages.error(
            request,
            "The authorization is incomplete: "
            + "; ".join(str(e) for errors in form.errors.values() for e in errors),
        )
        return redirect("consent:contact_consent", contact_id=contact.pk)
    data = form.cleaned_data
    scan = data.get("scan")
    try:
        records.authorization_record(
            tenant=request.tenant,
            contact=contact,
            text=data["text"],
            signature=records.Signature(
                data["signer_name"],
                data["signed_on"],
                data["by_representative"],
                data["representative_authority"],
            ),
            circumstances=records.Circumstances(
                initiated_by=data["initiated_by"],
                combined_with=frozenset(data["combined_with"]),
                conditioned_on=frozenset(data["conditioned_on"]),
                form_source=data["form_source"],
                expires_on=data["expires_on"],
                expiry_event=data["expiry_event"],
            ),
            evidence=Evidence(source=Source.PAPER, actor=actor_of(request)),
            submission_key=f"staff:{uuid.uuid4().hex}",
            attachment=records.Attachment(scan.read(), scan.content_type) if scan else None,
        )
    except records.AuthorizationDefective as refused:
        for defect in refused.defects:
            messages.error(request, f"{defect.message} ({defect.paragraph}; {defect.code})")
        return redirect("consent:contact_consent", contact_id=contact.pk)
    except ApplicationError as refused:
        messages.error(request, refused.message)
        return redirect("consent:contact_consent", contact_id=contact.pk)
    messages.success(request, "The signed authorization is recorded.")
    return redirect("consent:contact_consent", contact_id=contact.pk)


@require_POST
@require_permission("consent.manage")
def contact_signing_link(request: TenantRequest, contact_id: uuid.UUID) -> HttpResponse:
    contact = _contact(request, contact_id)
    form = SigningLinkForm(request.POST, tenant=request.tenant)
    if not form.is_valid():
        messages.error(request, "Choose a document.")
        return redirect("consent:contact_consent", contact_id=contact.pk)
    text = form.cleaned_data["text"]
    url = links.authorize_url(contact=contact, text=text)
    audit.record(
        actor=actor_of(request),
        action="authorization.link_create",
        target=contact,
        tenant=request.tenant,
        details={"text": str(text.pk)},
    )
    return no_store(
        render(request, "consent/signing_link.html", {"contact": contact, "text": text, "url": url})
    )


# --- Authorization texts -------------------------------------------------------------------------------


@require_permission("consent.manage")
def text_list(request: TenantRequest) -> HttpResponse:
    texts = AuthorizationText.objects.for_tenant(request.tenant).order_by("kind", "-version")
    return render(request, "consent/text_list.html", {"texts": texts})


@require_permission("consent.manage")
def text_detail(request: TenantRequest, text_id: uuid.UUID) -> HttpResponse:
    text = get_object_or_404(AuthorizationText, tenant=request.tenant, pk=text_id)
    return render(request, "consent/text_detail.html", {"text": text})


@require_permission("consent.manage")
def text_create(request: TenantRequest) -> HttpResponse:
    initial = {}
    based_on = request.GET.get("from")
    if based_on:
        try:
            source = (
                AuthorizationText.objects.for_tenant(request.tenant).filter(pk=uuid.UUID(based_on)).first()
            )
        except ValueError:
            source = None
        if source is not None:
            initial = {
                field: getattr(source, field)
                for field in AuthorizationTextForm().fields
                if hasattr(source, field)
            }
    form = AuthorizationTextForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        kind, title = data.pop("kind"), data.pop("title")
        try:
            text = authorizations.authorization_text_create(
                tenant=request.tenant, actor=actor_of(request), kind=kind, title=title, elements=data
            )
        except ApplicationError as error:
            for key in error.extra.get("missing", []):
                if key in form.fields:
                    form.add_error(key, "This element is required.")
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Published {text.title}, version {text.version}.")
            return redirect("consent:text_detail", text_id=text.pk)
    return render(request, "consent/text_form.html", {"form": form}, status=400 if form.errors else 200)


# --- Suppression list --------------------------------------------------------------------------------------


@require_permission("consent.manage")
def suppression_list(request: TenantRequest) -> HttpResponse:
    form = SuppressionAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            suppressions.suppression_add(
                tenant=request.tenant,
                actor=actor_of(request),
                reason=form.cleaned_data["reason"],
                email=form.cleaned_data["email"],
                note=form.cleaned_data["note"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "The address is suppressed.")
            return redirect("consent:suppression_list")
    entries = Suppression.objects.for_tenant(request.tenant).filter(removed_at__isnull=True)
    removed = (
        Suppression.objects.for_tenant(request.tenant)
        .filter(removed_at__isnull=False)
        .order_by("-removed_at")
    )
    context = {
        "form": form,
        "entries": entries[:500],
        "removed": removed[:100],
        "remove_form": SuppressionRemoveForm(),
    }
    return render(request, "consent/suppression_list.html", context, status=400 if form.errors else 200)


@require_POST
@require_permission("consent.manage")
def suppression_remove(request: TenantRequest, suppression_id: uuid.UUID) -> HttpResponse:
    entry = get_object_or_404(Suppression, tenant=request.tenant, pk=suppression_id)
    form = SuppressionRemoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the entry is removed.")
        return redirect("consent:suppression_list")
    try:
        suppressions.suppression_remove(
            tenant=request.tenant,
            actor=actor_of(request),
            suppression=entry,
            reason=form.cleaned_data["reason"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The entry is removed; the record of it is kept.")
    return redirect("consent:suppression_list")


# --- Settings and topics ---------------------------------------------------------------------------------


@require_permission("consent.manage")
def settings_page(request: TenantRequest) -> HttpResponse:
    current = services.consent_settings_get(tenant=request.tenant)
    initial = {
        "operating_states": ", ".join(current.operating_states),
        "state_mode": current.state_mode,
        "allow_unencrypted_waivers": current.allow_unencrypted_waivers,
        "reminder_days_before_expiry": current.reminder_days_before_expiry,
    }
    form = ConsentSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.consent_settings_update(
                tenant=request.tenant, actor=actor_of(request), **form.cleaned_data
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Consent settings saved.")
            return redirect("consent:settings")
    services.topics_ensure_system(tenant=request.tenant)
    context = {
        "form": form,
        "topic_form": TopicForm(),
        "topics": Topic.objects.for_tenant(request.tenant),
        "rule": state_rules.combine(current.operating_states),
        "rules": [state_rules.DEFAULT, *state_rules.RULES.values()],
    }
    return render(request, "consent/settings.html", context, status=400 if form.errors else 200)


@require_POST
@require_permission("consent.manage")
def topic_create(request: TenantRequest) -> HttpResponse:
    form = TopicForm(request.POST)
    if form.is_valid():
        try:
            services.topic_create(tenant=request.tenant, actor=actor_of(request), **form.cleaned_data)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Topic “{form.cleaned_data['name']}” added.")
    else:
        messages.error(
            request,
            "The topic is incomplete: "
            + "; ".join(str(e) for errors in form.errors.values() for e in errors),
        )
    return redirect("consent:settings")


# --- Reports ---------------------------------------------------------------------------------------------


@shows_aggregates
@require_permission("consent.view_reports")
def reports(request: TenantRequest) -> HttpResponse:
    manage = role_can(request.role, "consent.manage")
    report = selectors.consent_report(tenant=request.tenant, viewer=Viewer.of(request), with_ids=manage)
    return render(request, "consent/reports.html", {"report": report, "manage": manage})

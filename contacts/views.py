"""Contact pages: the list (masked per role, searched by blind index), the detail (an audited PHI
read), and the custom field definitions. Parse → authorize → one selector/service → render."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from audit.break_glass import break_glass_active
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, forbidden, require_permission
from healthmail.errors import ApplicationError, NotFound
from healthmail.spreadsheet import csv_download

from . import exports, selectors, services
from .forms import ContactSearchForm, CustomFieldForm, UnmaskForm
from .models import CustomField

PAGE_SIZE = 50


def _list_scope(request: TenantRequest) -> selectors.ReadScope:
    unmasked = role_can(request.role, "contacts.view_phi")
    return selectors.ReadScope(
        unmasked=unmasked, clinical=False, purpose="contact list" if unmasked else "masked list"
    )


@require_permission("contacts.view_masked")
def contact_list(request: TenantRequest) -> HttpResponse:
    searching = request.method == "POST"
    form = ContactSearchForm(request.POST if searching else None)
    contacts = selectors.contact_list(tenant=request.tenant)
    if searching and form.is_valid():
        contacts = selectors.contact_list(tenant=request.tenant, search=form.cleaned_data["q"])
    page = Paginator(contacts, PAGE_SIZE).get_page(None if searching else request.GET.get("page"))
    scope = _list_scope(request)
    records = selectors.contact_records(
        actor=actor_of(request), tenant=request.tenant, contacts=list(page), scope=scope
    )
    context = {
        "form": form,
        "page": page,
        "records": records,
        "searching": searching,
        "masked": not scope.unmasked,
        "may_export_identifying": role_can(request.role, "contacts.export_phi"),
    }
    return render(request, "contacts/contact_list.html", context)


@require_GET
@require_permission("contacts.view_masked")
def contact_export(request: TenantRequest) -> HttpResponseBase:
    """Every live contact as CSV: masked, or identifying for a role that may export PHI and asks."""
    identifying = request.GET.get("identifying") == "1"
    if identifying and not role_can(request.role, "contacts.export_phi"):
        return forbidden(request, "Your role exports masked contact details only.")
    lines = exports.contact_export_lines(
        tenant=request.tenant, actor=actor_of(request), identifying=identifying
    )
    return csv_download(lines, "contacts-identifying.csv" if identifying else "contacts-masked.csv")


@require_permission("contacts.view_masked")
def contact_detail(request: TenantRequest, contact_id) -> HttpResponse:
    try:
        contact = selectors.contact_get(tenant=request.tenant, contact_id=contact_id)
    except NotFound:
        raise Http404("No such contact.") from None
    grant = break_glass_active(
        user=request.user, tenant=request.tenant, target_type="contacts.contact", target_id=str(contact.pk)
    )
    view_phi = role_can(request.role, "contacts.view_phi") or grant is not None
    purpose = "break-glass" if grant and not role_can(request.role, "contacts.view_phi") else "contact detail"
    scope = selectors.ReadScope(
        unmasked=view_phi, clinical=view_phi, purpose=purpose if view_phi else "masked detail"
    )
    (record,) = selectors.contact_records(
        actor=actor_of(request), tenant=request.tenant, contacts=[contact], scope=scope, detail=True
    )
    clinical = record["clinical"]
    context = {
        "record": record,
        "clinical_rows": None
        if clinical is None
        else [
            (key.replace("_", " "), ", ".join(value) if isinstance(value, list) else value)
            for key, value in clinical.items()
        ],
        "break_glass": grant,
        "may_break_glass": not view_phi and role_can(request.role, "break_glass.open"),
        "unmask_form": UnmaskForm() if not view_phi and role_can(request.role, "contacts.unmask") else None,
    }
    return render(request, "contacts/contact_detail.html", context)


@require_POST
@require_permission("contacts.unmask")
def contact_unmask(request: TenantRequest, contact_id) -> HttpResponse:
    """The detail page unmasked, for this response only, after a reason is given (POST: the
    unmasked page is never a URL to bookmark, share or replay from history)."""
    try:
        contact = selectors.contact_get(tenant=request.tenant, contact_id=contact_id)
    except NotFound:
        raise Http404("No such contact.") from None
    form = UnmaskForm(request.POST)
    record, status = None, 400
    if form.is_valid():
        try:
            record = selectors.contact_unmasked_read(
                actor=actor_of(request),
                tenant=request.tenant,
                contact=contact,
                reason=form.cleaned_data["reason"],
            )
            status = 200
        except ApplicationError as error:
            form.add_error("reason", error.message)
    if record is None:
        scope = selectors.ReadScope(unmasked=False, clinical=False, purpose="masked detail")
        (record,) = selectors.contact_records(
            actor=actor_of(request), tenant=request.tenant, contacts=[contact], scope=scope, detail=True
        )
    context = {
        "record": record,
        "clinical_rows": None,
        "unmasked_reason": form.cleaned_data.get("reason") if status == 200 else "",
        "unmask_form": None if status == 200 else form,
    }
    response = render(request, "contacts/contact_detail.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_permission("tenant.manage_settings")
def custom_field_list(request: TenantRequest) -> HttpResponse:
    form = CustomFieldForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            field = services.custom_field_create(
                tenant=request.tenant,
                actor=actor_of(request),
                key=data["key"],
                label=data["label"],
                field_type=data["field_type"],
                phi_class=data["phi_class"],
                choices=data["choices"],
                segmentable=data["segmentable"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Custom field “{field.label}” added.")
            return redirect("contacts:custom_field_list")
    fields = selectors.custom_field_list(tenant=request.tenant)
    return render(request, "contacts/custom_fields.html", {"form": form, "fields": fields})


@require_POST
@require_permission("tenant.manage_settings")
def custom_field_delete(request: TenantRequest, field_id) -> HttpResponse:
    field = get_object_or_404(CustomField, tenant=request.tenant, pk=field_id)
    services.custom_field_delete(tenant=request.tenant, actor=actor_of(request), field=field)
    messages.success(request, f"Custom field “{field.label}” removed.")
    return redirect("contacts:custom_field_list")

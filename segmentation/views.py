"""Segment pages: the saved list, the visual builder with a live (masked) count, and the member
list for readers allowed to see it. Thin: rules live in services and selectors."""

from __future__ import annotations

import dataclasses
import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from contacts import icd10
from contacts.models import Contact
from contacts.selectors import ReadScope, contact_records, custom_field_list
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, forbidden, require_permission
from healthmail.disclosure import Viewer, disclose, shows_aggregates
from healthmail.errors import ApplicationError, NotFound

from . import selectors, services
from .dsl import DefinitionError
from .forms import SegmentForm
from .models import Segment
from .registry import FIELDS, GROUPS, OPERATOR_LABELS, custom_field

EDIT = "segments.edit"
MEMBERS_PER_PAGE = 50


def _segment(request: HttpRequest, segment_id) -> Segment:
    try:
        return selectors.segment_get(tenant=request.tenant, segment_id=segment_id)
    except NotFound:
        raise Http404("No such segment.") from None


def _builder_fields(request: HttpRequest, exclude=None) -> list[dict]:
    """What the builder's pickers offer: each field with its operators, input type and choices."""
    dynamic = {
        "consent": selectors.topic_options(tenant=request.tenant),
        "segment": selectors.segment_options(tenant=request.tenant, exclude=exclude),
    }
    return [
        {
            "name": f.name,
            "label": f.label,
            "group": f.group,
            "type": f.type,
            "is_phi": f.is_phi,
            "help": f.help,
            "operators": [{"value": op, "label": OPERATOR_LABELS[op]} for op in f.operators],
            "lookup_url": reverse("segmentation:condition_lookup") if f.extra.get("lookup") else "",
            "choices": dynamic.get(f.name) or [{"value": v, "label": str(label)} for v, label in f.choices],
        }
        for group in GROUPS
        for f in [*FIELDS.values(), *_custom_fields(request.tenant)]
        if f.group == group
    ]


def _custom_fields(tenant) -> list:
    """The tenant's segmentable custom fields, labelled as the tenant named them."""
    return [
        dataclasses.replace(custom_field(definition.key), label=definition.label)
        for definition in custom_field_list(tenant=tenant).filter(segmentable=True)
    ]


@shows_aggregates
@require_GET
@require_permission(EDIT)
def segment_list(request: HttpRequest) -> HttpResponse:
    segments = list(selectors.segment_list(tenant=request.tenant))
    viewer = Viewer.of(request)
    rows = [
        {
            "segment": s,
            "count": services.segment_count_disclosed(tenant=request.tenant, viewer=viewer, segment=s),
            "where_used": selectors.segment_where_used(tenant=request.tenant, segment=s),
        }
        for s in segments
    ]
    return render(request, "segmentation/segment_list.html", {"rows": rows})


def _builder(request: HttpRequest, segment: Segment | None) -> HttpResponse:
    initial = {"definition": json.dumps(segment.definition if segment else {"all": []})}
    if segment is not None:
        initial.update(name=segment.name, description=segment.description)
    form = SegmentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if segment is None:
                segment = services.segment_create(
                    tenant=request.tenant,
                    actor=actor_of(request),
                    viewer=Viewer.of(request),
                    name=data["name"],
                    description=data["description"],
                    definition=data["definition"],
                )
            else:
                services.segment_update(
                    tenant=request.tenant,
                    actor=actor_of(request),
                    viewer=Viewer.of(request),
                    segment=segment,
                    name=data["name"],
                    description=data["description"],
                    definition=data["definition"],
                )
        except DefinitionError as error:
            for item in error.extra["errors"]:
                form.add_error("definition", f"{item['path']}: {item['message']}")
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Segment “{segment.name}” saved.")
            return redirect("segmentation:segment_edit", segment_id=segment.pk)
    context = {
        "form": form,
        "segment": segment,
        "fields": _builder_fields(request, exclude=segment.pk if segment else None),
        "where_used": selectors.segment_where_used(tenant=request.tenant, segment=segment) if segment else [],
        "may_see_members": segment is not None and _may_see_members(request, segment),
    }
    status = 400 if form.is_bound else 200
    return render(request, "segmentation/segment_builder.html", context, status=status)


@require_permission(EDIT)
def segment_new(request: HttpRequest) -> HttpResponse:
    return _builder(request, None)


@require_permission(EDIT)
def segment_edit(request: HttpRequest, segment_id) -> HttpResponse:
    return _builder(request, _segment(request, segment_id))


@shows_aggregates
@require_POST
@require_permission(EDIT)
def segment_count(request: HttpRequest) -> HttpResponse:
    """The live count (htmx partial) through the disclosure policy, with breakdowns, or the errors."""
    context: dict = {}
    try:
        definition = json.loads(request.POST.get("definition") or "null")
        context["result"] = services.segment_count(
            tenant=request.tenant, viewer=Viewer.of(request), definition=definition
        )
    except ValueError:
        context["errors"] = [{"path": "/", "message": "is not valid JSON"}]
    except DefinitionError as error:
        context["errors"] = error.extra["errors"]
    except ApplicationError as error:
        context["errors"] = [{"path": "/", "message": error.message}]
    return render(request, "segmentation/_count.html", context)


def _may_see_members(request: HttpRequest, segment: Segment) -> bool:
    """Being in a PHI segment discloses health information: only PHI readers see who is in it."""
    if not role_can(request.role, "contacts.view_masked"):
        return False
    return not segment.uses_phi or role_can(request.role, "contacts.view_phi")


@require_GET
@require_permission(EDIT)
def condition_lookup(request: HttpRequest) -> JsonResponse:
    """ICD-10-CM categories and codes by code prefix or name, for the builder's search (no PHI)."""
    query = (request.GET.get("q") or "")[:100]
    return JsonResponse({"results": icd10.condition_search(query)})


@shows_aggregates
@require_GET
def segment_members(request: HttpRequest, segment_id) -> HttpResponse:
    segment = _segment(request, segment_id)
    if not _may_see_members(request, segment):
        return forbidden(request, "Your role does not allow seeing who is in this segment.")
    unmasked = role_can(request.role, "contacts.view_phi")
    ids = services.segment_member_ids(tenant=request.tenant, definition=segment.definition)
    page_ids = ids[:MEMBERS_PER_PAGE]
    by_id = {c.pk: c for c in Contact.objects.for_tenant(request.tenant).filter(pk__in=page_ids)}
    contacts = [by_id[pk] for pk in page_ids if pk in by_id]
    scope = ReadScope(unmasked=unmasked, clinical=False, purpose="segment member review")
    records = contact_records(actor=actor_of(request), tenant=request.tenant, contacts=contacts, scope=scope)
    context = {
        "segment": segment,
        "records": records,
        "total": disclose(
            len(ids),
            tenant=request.tenant,
            viewer=Viewer.of(request),
            query=f"members:{segment.pk}",
            sensitive=segment.uses_phi,
        ).display,
        "shown": len(records),
        "unmasked": unmasked,
    }
    return render(request, "segmentation/segment_members.html", context)

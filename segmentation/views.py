"""Segment pages: the saved list, the visual builder with a live (masked) count, and the member
list for readers allowed to see it. Thin: rules live in services and selectors."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from contacts import exports, icd10
from contacts.models import Contact
from contacts.selectors import ReadScope, contact_records, custom_field_list
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, forbidden, require_permission
from healthmail.disclosure import Viewer, disclose, shows_aggregates
from healthmail.errors import ApplicationError, NotFound
from healthmail.spreadsheet import csv_download

from . import rule_rows, selectors, services
from .dsl import DefinitionError
from .forms import SegmentForm
from .models import Segment
from .registry import FIELDS, GROUPS, LIST_OPERATORS, OPERATOR_LABELS, PAIR_OPERATORS, custom_field

EDIT = "segments.edit"
_DATALIST_ID = re.compile(r"g-\d{1,3}-r-\d{1,3}-codes")
MEMBERS_PER_PAGE = 50


def _segment(request: TenantRequest, segment_id) -> Segment:
    try:
        return selectors.segment_get(tenant=request.tenant, segment_id=segment_id)
    except NotFound:
        raise Http404("No such segment.") from None


def _builder_fields(request: TenantRequest, exclude=None) -> list[dict]:
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
def segment_list(request: TenantRequest) -> HttpResponse:
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


def _builder(request: TenantRequest, segment: Segment | None) -> HttpResponse:
    """The rule rows are the builder (plain form; htmx only re-renders them in place). Admins may
    also save the JSON definition as API users write it; others see it read-only."""
    saved = segment.definition if segment else {"all": []}
    initial = {"definition": json.dumps(saved, indent=2)}
    if segment is not None:
        initial.update(name=segment.name, description=segment.description)
    form = SegmentForm(request.POST or None, initial=initial)
    may_edit_json = role_can(request.role, "segments.edit_json")
    rows = rule_rows.rows_from_definition(saved)
    action = request.POST.get("builder", "")
    if request.method == "POST" and rows is not None:
        rows = rule_rows.rows_from_post(request.POST)
        if action:
            rows = rule_rows.rows_apply(rows, action)
    context: dict = {"count": None}
    fields = _builder_fields(request, exclude=segment.pk if segment else None)
    if action:  # a builder button: show the changed rows (and, without JavaScript, their count)
        form = SegmentForm(initial={**initial, **request.POST.dict()})
        if not request.headers.get("HX-Request"):
            definition = _rows_or_json(request, rows, may_edit_json)[0]
            context["count"] = _count_context(request, saved if definition is None else definition)
    elif request.method == "POST" and form.is_valid():
        definition, places = _rows_or_json(request, rows, may_edit_json)
        if definition is None:
            definition = saved
        saved_segment = _save(request, form, segment, definition, rows, places)
        if saved_segment is not None:
            messages.success(request, f"Segment “{saved_segment.name}” saved.")
            return redirect("segmentation:segment_edit", segment_id=saved_segment.pk)
    context.update(
        form=form,
        segment=segment,
        rows=rows,
        groups=_row_groups(rows.ensure_blank_rule(), fields) if rows is not None else None,
        may_edit_json=may_edit_json,
        fields=fields,
        where_used=selectors.segment_where_used(tenant=request.tenant, segment=segment) if segment else [],
        may_see_members=segment is not None and _may_see_members(request, segment),
        group_matches=rule_rows.GROUP_MATCHES,
        segment_matches=rule_rows.SEGMENT_MATCHES,
    )
    status = 400 if form.is_bound and not action and form.errors else 200
    response = render(request, "segmentation/segment_builder.html", context, status=status)
    if action:
        response["HX-Trigger"] = "segment-changed"  # the count refreshes for the changed rows
    return response


def _row_groups(rows: rule_rows.Rows, fields: list[dict]) -> list[dict]:
    """Each rule with what its row shows: the chosen field's operators and the kind of value input."""
    by_name = {f["name"]: f for f in fields}
    return [
        {"match": group.match, "rules": [_row(rule, by_name.get(rule.field)) for rule in group.rules]}
        for group in rows.groups
    ]


def _row(rule: rule_rows.Rule, field: dict | None) -> dict:
    if field is None:
        kind = "text"
    elif rule.op == "between":
        kind = "range"
    elif rule.op in PAIR_OPERATORS:
        kind = "times_days"
    elif field["type"] == "boolean":
        kind = "yes_no"
    elif field["choices"]:
        kind = "choices" if rule.op in LIST_OPERATORS else "choice"
    elif field["type"] in ("integer", "days"):
        kind = "number"
    else:
        kind = "list" if rule.op in LIST_OPERATORS else "text"
    return {
        "rule": rule,
        "field": field,
        "kind": kind,
        "value": rule.values[0] if rule.values else "",
    }


def _rows_or_json(request: TenantRequest, rows, may_edit_json: bool) -> tuple[Any, dict]:
    """What the form asks to save: the JSON box (admins who pressed its button), the rows, or
    nothing new (rows that cannot show the saved definition: it stays as it is)."""
    if request.POST.get("source") == "json" and may_edit_json:
        try:
            return json.loads(request.POST.get("definition") or "null"), {}
        except ValueError:
            return None, {"": "The JSON definition is not valid JSON."}
    if rows is None:
        return None, {}
    return rule_rows.rows_definition(rows)


def _save(request, form, segment, definition, rows, places) -> Segment | None:
    if "" in places:  # the admin's JSON did not parse
        form.add_error("definition", places[""])
        return None
    data = form.cleaned_data
    fields = {
        "tenant": request.tenant,
        "actor": actor_of(request),
        "viewer": Viewer.of(request),
        "name": data["name"],
        "description": data["description"],
        "definition": definition,
    }
    try:
        if segment is None:
            return services.segment_create(**fields)
        services.segment_update(segment=segment, **fields)
        return segment
    except DefinitionError as error:
        if places and rows is not None:
            for message in rule_rows.rows_place_errors(error.extra["errors"], places, rows):
                form.add_error(None, message)
        else:
            for item in error.extra["errors"]:
                form.add_error("definition", f"{item['path']}: {item['message']}")
    except ApplicationError as error:
        form.add_error(None, error.message)
    return None


def _count_context(request: TenantRequest, definition: Any) -> dict:
    """The count partial's context: the disclosed count, or the validator's errors."""
    try:
        result = services.segment_count(
            tenant=request.tenant, viewer=Viewer.of(request), definition=definition
        )
    except DefinitionError as error:
        return {"errors": error.extra["errors"]}
    except ApplicationError as error:
        return {"errors": [{"path": "/", "message": error.message}]}
    return {"result": result, "definition_json": json.dumps(definition, indent=2)}


@shows_aggregates
@require_permission(EDIT)
def segment_new(request: TenantRequest) -> HttpResponse:
    return _builder(request, None)


@shows_aggregates
@require_permission(EDIT)
def segment_edit(request: TenantRequest, segment_id) -> HttpResponse:
    return _builder(request, _segment(request, segment_id))


@shows_aggregates
@require_POST
@require_permission(EDIT)
def segment_count(request: TenantRequest) -> HttpResponse:
    """The live count (htmx partial) through the disclosure policy, with breakdowns, or the errors:
    of the rule rows, or of the JSON box when the form has no rows (a definition nested deeper)."""
    if any(rule_rows.is_rule_key(key) for key in request.POST):
        rows = rule_rows.rows_apply(rule_rows.rows_from_post(request.POST), "refresh")
        definition, places = rule_rows.rows_definition(rows)
        context = _count_context(request, definition)
        if context.get("errors"):  # said of the rows ("Group 1, rule 2: …"), not of JSON paths
            placed = rule_rows.rows_place_errors(context["errors"], places, rows)
            context["errors"] = [{"path": "", "message": message} for message in placed]
        return render(request, "segmentation/_count.html", context)
    try:
        definition = json.loads(request.POST.get("definition") or "null")
    except ValueError:
        errors = [{"path": "/", "message": "is not valid JSON"}]
        return render(request, "segmentation/_count.html", {"errors": errors})
    return render(request, "segmentation/_count.html", _count_context(request, definition))


def _may_see_members(request: TenantRequest, segment: Segment) -> bool:
    """Being in a PHI segment discloses health information: only PHI readers see who is in it."""
    if not role_can(request.role, "contacts.view_masked"):
        return False
    return not segment.uses_phi or role_can(request.role, "contacts.view_phi")


@require_GET
@require_permission(EDIT)
def condition_lookup(request: TenantRequest) -> HttpResponse:
    """ICD-10-CM categories and codes by code prefix or name (the public code list: no PHI).

    JSON for scripts; for the rule rows (htmx) the suggestions of the value box that asked, as the
    <datalist> it names: the query is that box's text after its last comma, and each option keeps
    the codes typed before it, so picking one adds a code to the list."""
    htmx = getattr(request, "htmx", None)
    if not htmx:
        query = (request.GET.get("q") or "")[:100]
        return JsonResponse({"results": icd10.condition_search(query)})
    typed = request.GET.get(htmx.trigger_name or "", "")[:2000]
    before, comma, last = typed.rpartition(",")
    kept = f"{before.strip()}, " if comma and before.strip() else ""
    target = htmx.target or ""
    context = {
        "list_id": target if _DATALIST_ID.fullmatch(target) else "condition-codes",
        "options": [
            {"value": kept + item["value"], "label": item["label"]}
            for item in icd10.condition_search(last.strip()[:100])
        ],
    }
    return render(request, "segmentation/_condition_options.html", context)


@require_GET
def segment_export(request: TenantRequest, segment_id) -> HttpResponseBase:
    """The members as CSV, to readers who may see them: masked, or identifying for a role that may
    export PHI and asks."""
    segment = _segment(request, segment_id)
    if not _may_see_members(request, segment):
        return forbidden(request, "Your role does not allow seeing who is in this segment.")
    identifying = request.GET.get("identifying") == "1"
    if identifying and not role_can(request.role, "contacts.export_phi"):
        return forbidden(request, "Your role exports masked contact details only.")
    lines = exports.contact_export_lines(
        tenant=request.tenant,
        actor=actor_of(request),
        identifying=identifying,
        contact_ids=services.segment_member_ids(tenant=request.tenant, definition=segment.definition),
        source=f"segment {segment.pk}",
    )
    return csv_download(lines, f"segment-{segment.pk}.csv")


@shows_aggregates
@require_GET
def segment_members(request: TenantRequest, segment_id) -> HttpResponse:
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
        "may_export_identifying": role_can(request.role, "contacts.export_phi"),
    }
    return render(request, "segmentation/segment_members.html", context)

"""Journey pages: list, builder (canvas + step list), detail (step report, dry run, versions,
review, activation), pause / resume / archive. Role-checked like the campaign pages; another
tenant's journey is a 404."""

from __future__ import annotations

import json

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from campaigns.selectors import template_list
from campaigns.views.common import require_any_permission
from consent import services as consent
from consent.models import Purpose
from contacts.models import JourneyStage
from delivery.models import WebhookEndpoint
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.disclosure import Viewer, shows_aggregates
from healthmail.errors import ApplicationError, Conflict, NotFound
from healthmail.web.actions import service_run

from . import definition as spec
from . import library, selectors
from .forms import JourneyForm, initial_of, place_problems
from .models import Journey, JourneyVersion
from .services import dryrun
from .services import journeys as services

EDIT = services.EDIT
APPROVE = services.APPROVE
VIEW_JOURNEYS = (EDIT, APPROVE, "reports.view")


def journey_or_404(request: TenantRequest, journey_id) -> Journey:
    try:
        return selectors.journey_get(tenant=request.tenant, journey_id=journey_id)
    except NotFound:
        raise Http404("No such journey.") from None


def _latest(request: TenantRequest, journey: Journey) -> JourneyVersion | None:
    return selectors.journey_versions(tenant=request.tenant, journey=journey).order_by("-number").first()


@require_GET
@require_any_permission(*VIEW_JOURNEYS)
def journey_list(request: TenantRequest) -> HttpResponse:
    context = {
        "journeys": selectors.journey_list(tenant=request.tenant),
        "waiting": (
            selectors.versions_waiting(tenant=request.tenant) if role_can(request.role, APPROVE) else []
        ),
        "library": library.journey_templates() if role_can(request.role, EDIT) else [],
    }
    return render(request, "journeys/journey_list.html", context)


def _options(labels: dict[str, str]) -> list[dict]:
    return [{"id": key, "name": label} for key, label in labels.items()]


def _palette(request: TenantRequest, journey: Journey | None) -> dict:
    """What the canvas offers in its selects (the tenant's own templates, topics, webhook endpoints
    and other journeys to jump to)."""
    topics = consent.topics_ensure_system(tenant=request.tenant)
    others = Journey.objects.filter(tenant=request.tenant).exclude(status=Journey.Status.ARCHIVED)
    if journey is not None:
        others = others.exclude(pk=journey.pk)
    return {
        "webhooks": [
            {"id": str(e.pk), "name": e.url}
            for e in WebhookEndpoint.objects.filter(tenant=request.tenant, active=True).order_by("url")
        ],
        "journeys": [{"id": str(j.pk), "name": j.name} for j in others.order_by("name")],
        "roles": _options(spec.NOTIFY_ROLE_LABELS),
        "metrics": _options(spec.METRIC_LABELS),
        "step_labels": spec.STEP_LABELS,
        "max_variants": spec.MAX_VARIANTS,
        "templates": [
            {"id": str(t.pk), "name": t.name, "kind": t.kind}
            for t in template_list(tenant=request.tenant)  # archived ones left out
        ],
        "purposes": [{"id": value, "name": label} for value, label in Purpose.choices],
        "topics": [{"id": key, "name": topic.name} for key, topic in sorted(topics.items())],
        "stages": [{"id": value, "name": label} for value, label in JourneyStage.choices],
        "branch_fields": list(spec.BRANCH_FIELDS),
        "exits": {kind: list(exits) for kind, exits in spec.EXITS.items()},
    }


def _builder(request: TenantRequest, journey: Journey | None, initial: dict) -> HttpResponse:
    form = JourneyForm(request.POST or None, initial=initial, tenant=request.tenant)
    step_problems: dict[str, list[str]] = {}
    samples = None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            definition = form.definition()
            try:
                if request.POST.get("action") == "dry_run":
                    samples = dryrun.dry_run(definition)
                    status = 200
                elif journey is None:
                    journey = services.journey_create(
                        tenant=request.tenant,
                        actor=actor_of(request),
                        role=request.role,
                        name=form.cleaned_data["name"],
                        definition=definition,
                    )
                else:
                    with transaction.atomic():  # the new name and the new version, or neither
                        if form.cleaned_data["name"].strip() != journey.name:
                            services.journey_rename(
                                tenant=request.tenant,
                                actor=actor_of(request),
                                role=request.role,
                                journey=journey,
                                name=form.cleaned_data["name"],
                            )
                        services.journey_edit(
                            tenant=request.tenant,
                            actor=actor_of(request),
                            role=request.role,
                            journey=journey,
                            definition=definition,
                        )
            except ApplicationError as error:
                problems = error.extra.get("problems") or [{"where": "", "message": error.message}]
                step_problems = place_problems(form, problems)
                if step_problems:
                    form.add_error(
                        None, f"{len(step_problems)} step(s) need attention: see the messages at the steps."
                    )
            else:
                if samples is None and journey is not None:  # saved (not a dry run)
                    messages.success(request, f"Journey “{journey.name}” saved as a draft.")
                    return redirect("journeys:journey_detail", journey_id=journey.pk)
    steps = form.data.get("steps") if form.is_bound else form.initial.get("steps")
    context = {
        "form": form,
        "journey": journey,
        "palette": _palette(request, journey),
        "step_list": _step_list(steps, step_problems),
        "step_problems": step_problems,
        "samples": samples,
    }
    return render(request, "journeys/journey_edit.html", context, status=status)


def _step_list(steps_json, problems: dict[str, list[str]]) -> list[dict]:
    """The server-rendered step list (the canvas's fallback), with each step's problems."""
    try:
        steps = json.loads(steps_json or "{}") if isinstance(steps_json, str) else (steps_json or {})
    except json.JSONDecodeError:
        return []
    if not isinstance(steps, dict):
        return []
    rows = []
    for key, step in steps.items():
        step = step if isinstance(step, dict) else {}
        exits = [(name, step.get(name, "")) for name in spec.EXITS.get(step.get("type", ""), ())]
        hidden = ("type", "template_version_id", *spec.EXITS.get(step.get("type", ""), ()))
        settings = {k: v for k, v in step.items() if k not in hidden}
        rows.append(
            {
                "key": key,
                "type": spec.STEP_LABELS.get(step.get("type", ""), "Unknown step type"),
                "settings": settings,
                "exits": exits,
                "problems": problems.get(key, []),
            }
        )
    return rows


@require_permission(EDIT)
def journey_new(request: TenantRequest) -> HttpResponse:
    key = request.GET.get("template", "")
    initial = {"cycle_cap": spec.DEFAULT_CYCLE_CAP, "entry_kind": "event", "steps": "{}"}
    if key:
        try:
            found = library.journey_template(key)
        except NotFound:
            raise Http404("No such journey template.") from None
        initial = initial_of(found.name, found.definition)
    return _builder(request, None, initial)


@require_permission(EDIT)
def journey_edit(request: TenantRequest, journey_id) -> HttpResponse:
    journey = journey_or_404(request, journey_id)
    if journey.status == Journey.Status.ARCHIVED:
        messages.error(request, "The journey is archived: it can no longer be edited.")
        return redirect("journeys:journey_detail", journey_id=journey.pk)
    latest = _latest(request, journey)
    return _builder(request, journey, initial_of(journey.name, latest.definition if latest else {}))


@shows_aggregates
@require_GET
@require_any_permission(*VIEW_JOURNEYS)
def journey_detail(request: TenantRequest, journey_id) -> HttpResponse:
    journey = journey_or_404(request, journey_id)
    versions = list(selectors.journey_versions(tenant=request.tenant, journey=journey))
    latest = versions[0] if versions else None
    shown = latest.definition if latest else {}
    context = {
        "journey": journey,
        "latest": latest,
        "entry": selectors.entry_summary(tenant=request.tenant, entry=shown["entry"]) if shown else "",
        "versions": versions,
        "report": selectors.step_report_disclosed(
            tenant=request.tenant, journey=journey, viewer=Viewer.of(request)
        ),
        "conversions": selectors.conversions_by_day_disclosed(
            tenant=request.tenant, journey=journey, viewer=Viewer.of(request)
        ),
        "step_list": _step_list(
            {k: shown["steps"][k] for k in selectors.step_order(shown)} if shown else {}, {}
        ),
        "samples": dryrun.dry_run(shown) if shown else None,
        "may_edit": role_can(request.role, EDIT),
        "may_review": role_can(request.role, APPROVE),
        "review_url": "journeys:journey_review",
    }
    return render(request, "journeys/journey_detail.html", context)


def _acting(request: TenantRequest) -> dict:
    """The keyword arguments every journey workflow service takes for the member acting."""
    return {"tenant": request.tenant, "actor": actor_of(request), "role": request.role}


def _step(request: TenantRequest, journey_id, do, success: str) -> HttpResponse:
    journey = journey_or_404(request, journey_id)
    service_run(request, lambda: do(journey), success)
    return redirect("journeys:journey_detail", journey_id=journey.pk)


def _version_in(request: TenantRequest, journey: Journey, status: str) -> JourneyVersion:
    latest = _latest(request, journey)
    if latest is None or latest.status != status:
        raise Conflict(
            f"No version of this journey is {JourneyVersion.Status(status).label.lower()}.",
            code="version_state",
        )
    return latest


@require_POST
@require_permission(EDIT)
def journey_submit(request: TenantRequest, journey_id) -> HttpResponse:
    def do(journey):
        latest = _latest(request, journey)
        if latest is None:
            raise Conflict("Save the journey first.", code="version_state")
        services.journey_submit(**_acting(request), version=latest)

    return _step(request, journey_id, do, "Submitted for review.")


@require_POST
@require_permission(APPROVE)
def journey_review(request: TenantRequest, journey_id) -> HttpResponse:
    approve = request.POST.get("decision") == "approve"

    def do(journey):
        services.journey_approve(
            **_acting(request),
            version=_version_in(request, journey, JourneyVersion.Status.IN_REVIEW),
            approve=approve,
            comment=request.POST.get("comment", ""),
        )

    return _step(
        request,
        journey_id,
        do,
        "Approved." if approve else "Changes requested: the journey is back with its author.",
    )


@require_POST
@require_permission(EDIT)
def journey_activate(request: TenantRequest, journey_id) -> HttpResponse:
    def do(journey):
        version = _version_in(request, journey, JourneyVersion.Status.APPROVED)
        # Contacts already inside stay on their version, or move at a safe step (the marketer's choice).
        move = request.POST.get("move", services.MOVE_STAY)
        services.journey_activate(**_acting(request), journey=journey, version=version, move=move)

    return _step(request, journey_id, do, "Activated: contacts enter it now.")


@require_POST
@require_permission(EDIT)
def journey_pause(request: TenantRequest, journey_id) -> HttpResponse:
    return _step(
        request,
        journey_id,
        lambda journey: services.journey_pause(**_acting(request), journey=journey),
        "Paused: nobody enters and nobody moves on.",
    )


@require_POST
@require_permission(EDIT)
def journey_resume(request: TenantRequest, journey_id) -> HttpResponse:
    return _step(
        request,
        journey_id,
        lambda journey: services.journey_pause(**_acting(request), journey=journey, resume=True),
        "Resumed: contacts due move on now.",
    )


@require_POST
@require_permission(EDIT)
def journey_archive(request: TenantRequest, journey_id) -> HttpResponse:
    return _step(
        request,
        journey_id,
        lambda journey: services.journey_archive(**_acting(request), journey=journey),
        "Archived: every contact inside has left the journey.",
    )

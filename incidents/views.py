"""Compliance officers' incident pages: the list with clocks, opening one (from an alert or not),
and one incident's workflow (evidence, affected individuals, risk assessment, decision and sign-off,
deadlines, notices). Every write is a POST that runs one service and redirects."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.models import Alert
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.web.actions import service_run

from . import (
    access_denial_views,
    access_requests,
    accounting,
    affected,
    audience_notices,
    delays,
    notices,
    selectors,
    services,
)
from .forms import (
    AccessRequestForm,
    AssessmentForm,
    DecisionForm,
    DelayForm,
    DenialForm,
    DeriveForm,
    EvidenceForm,
    ExtensionForm,
    FeeForm,
    IncidentForm,
    LetterForm,
    RejectForm,
    SignOffForm,
)
from .models import AccessRequest, AffectedIndividual, Evidence, Incident, LawEnforcementDelay
from .view_helpers import access_request_or_404, form_action_run, incident_or_404, who

PERMISSION = services.PERMISSION


@require_permission(PERMISSION)
def incident_list(request: TenantRequest) -> HttpResponse:
    context = {
        "rows": selectors.incident_list(tenant=request.tenant),
        "alerts": selectors.alerts_to_open_from(tenant=request.tenant),
    }
    return render(request, "incidents/incident_list.html", context)


@require_permission(PERMISSION)
def incident_new(request: TenantRequest) -> HttpResponse:
    alert = None
    alert_id = request.POST.get("alert") or request.GET.get("alert")
    if alert_id:
        with tenant_context(request.tenant):
            try:
                alert = Alert.objects.filter(tenant=request.tenant, pk=alert_id).first()
            except ValidationError:  # not a UUID: no such alert
                alert = None
        if alert is None:
            return render(request, "404.html", status=404)
    if request.method == "POST":
        form = IncidentForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                incident = services.incident_open(
                    tenant=request.tenant,
                    user=request.user,
                    role=request.role,
                    title=data["title"],
                    description=data["description"],
                    how_discovered=data["how_discovered"],
                    discovered_on=data["discovered_on"],
                    business_associate=data["business_associate"],
                    alert=alert,
                )
            except ApplicationError as error:
                form.add_error("discovered_on" if error.code == "discovered_on" else None, error.message)
            else:
                messages.success(
                    request, "Incident recorded. The notification clock runs from the discovery date."
                )
                return redirect("incidents:detail", incident_id=incident.pk)
    else:
        initial: dict[str, object] = {"discovered_on": timezone.localdate()}
        if alert is not None:
            initial |= {
                "alert": alert.pk,
                "title": alert.summary[:200],
                "how_discovered": f"Security alert ({alert.rule}) of {alert.created_at:%Y-%m-%d %H:%M} UTC",
                "discovered_on": timezone.localdate(alert.created_at),
            }
        form = IncidentForm(initial=initial)
    return render(request, "incidents/incident_new.html", {"form": form, "alert": alert})


def _detail_context(request: TenantRequest, incident: Incident, **forms) -> dict:
    with tenant_context(request.tenant):
        evidence = list(Evidence.objects.filter(tenant=request.tenant, incident=incident))
        people = list(AffectedIndividual.objects.filter(tenant=request.tenant, incident=incident))
        clocks = selectors.clocks_of(incident)
        audience_rows = audience_notices.audience_rows(incident)
        delay_rows = list(LawEnforcementDelay.objects.filter(tenant=request.tenant, incident=incident))
    rows = notices.notice_rows(tenant=request.tenant, incident=incident)
    substitute = sum(1 for row in rows if row.notice.method == row.notice.Method.SUBSTITUTE)
    window = incident.derived_query or {}
    derive_initial = {
        "since": window.get("since", "")[:16]
        or (incident.occurred_from and incident.occurred_from.strftime("%Y-%m-%dT%H:%M")),
        "until": window.get("until", "")[:16]
        or (incident.occurred_until and incident.occurred_until.strftime("%Y-%m-%dT%H:%M")),
        "actor_type": window.get("actor_type", ""),
        "actor_id": window.get("actor_id", ""),
    }
    return {
        "incident": incident,
        "evidence": evidence,
        "affected": people,
        "clocks": clocks,
        "notice_rows": rows,
        "audience_rows": audience_rows,
        "delays": delay_rows,
        "delay_form": forms.get("delay_form") or DelayForm(prefix="delay"),
        "today": timezone.localdate(),
        "substitute_advice": notices.substitute_method(substitute),
        "evidence_form": forms.get("evidence_form") or EvidenceForm(prefix="evidence"),
        "derive_form": forms.get("derive_form") or DeriveForm(initial=derive_initial, prefix="derive"),
        "assessment_form": forms.get("assessment_form")
        or AssessmentForm(
            prefix="assessment",
            initial={
                name: getattr(incident, name)
                for name in (
                    "factor_nature",
                    "factor_recipient",
                    "factor_acquired",
                    "factor_mitigated",
                    "probability",
                )
            },
        ),
        "decision_form": forms.get("decision_form") or DecisionForm(prefix="decision"),
        "sign_off_form": forms.get("sign_off_form") or SignOffForm(prefix="sign_off"),
        "reject_form": forms.get("reject_form") or RejectForm(prefix="reject"),
        "letter_form": forms.get("letter_form")
        or LetterForm(
            prefix="letter", initial={name: getattr(incident, name) for name in services.LETTER_FIELDS}
        ),
    }


@require_permission(PERMISSION)
def incident_detail(request: TenantRequest, incident_id) -> HttpResponse:
    incident = incident_or_404(request, incident_id)
    return render(request, "incidents/incident_detail.html", _detail_context(request, incident))


def _post(
    request: TenantRequest,
    incident_id,
    form_class,
    form_name: str,
    action: Callable,
    success: str,
    fields: Callable[[Any], dict] = lambda form: form.cleaned_data,
) -> HttpResponse:
    """Validate the form, run the service with the actor, the incident and `fields(form)` (the
    cleaned data unless told); on a refusal show the page again with the error on the form (on its
    field when the service names one)."""
    incident = incident_or_404(request, incident_id)
    form = form_class(request.POST, prefix=form_name.removesuffix("_form"))
    if form.is_valid():
        try:
            action(**who(request), incident=incident, **fields(form))
        except ApplicationError as error:
            form.add_error(error.code if error.code in form.fields else None, error.message)
        else:
            messages.success(request, success)
            return redirect("incidents:detail", incident_id=incident.pk)
    context = _detail_context(request, incident, **{form_name: form})
    return render(request, "incidents/incident_detail.html", context, status=400)


@require_POST
@require_permission(PERMISSION)
def evidence_add(request: TenantRequest, incident_id) -> HttpResponse:
    return _post(
        request, incident_id, EvidenceForm, "evidence_form", services.evidence_link, "Evidence linked."
    )


@require_POST
@require_permission(PERMISSION)
def affected_derive(request: TenantRequest, incident_id) -> HttpResponse:
    success = "Affected individuals derived from the audit trail."
    return _post(request, incident_id, DeriveForm, "derive_form", affected.affected_derive, success)


@require_POST
@require_permission(PERMISSION)
def assessment_save(request: TenantRequest, incident_id) -> HttpResponse:
    return _post(
        request,
        incident_id,
        AssessmentForm,
        "assessment_form",
        services.risk_assess,
        "Risk assessment recorded.",
        lambda form: {"factors": form.factors(), "probability": form.cleaned_data["probability"]},
    )


@require_POST
@require_permission(PERMISSION)
def decision_propose(request: TenantRequest, incident_id) -> HttpResponse:
    success = "Decision proposed. A second compliance officer must sign it off."
    return _post(request, incident_id, DecisionForm, "decision_form", services.decision_propose, success)


@require_POST
@require_permission(PERMISSION)
def decision_sign_off(request: TenantRequest, incident_id) -> HttpResponse:
    success = "Decision signed off."
    return _post(request, incident_id, SignOffForm, "sign_off_form", services.decision_sign_off, success)


@require_POST
@require_permission(PERMISSION)
def decision_reject(request: TenantRequest, incident_id) -> HttpResponse:
    success = "The proposal went back for assessment."
    return _post(request, incident_id, RejectForm, "reject_form", services.decision_reject, success)


@require_POST
@require_permission(PERMISSION)
def letter_save(request: TenantRequest, incident_id) -> HttpResponse:
    return _post(
        request,
        incident_id,
        LetterForm,
        "letter_form",
        services.letter_content_set,
        "Notice content saved.",
        lambda form: {"content": form.cleaned_data},
    )


@require_POST
@require_permission(PERMISSION)
def delay_record(request: TenantRequest, incident_id) -> HttpResponse:
    success = "Law-enforcement delay recorded: the deadlines are pushed back by it (164.412)."
    return _post(request, incident_id, DelayForm, "delay_form", delays.delay_record, success)


@require_POST
@require_permission(PERMISSION)
def notices_send(request: TenantRequest, incident_id) -> HttpResponse:
    incident = incident_or_404(request, incident_id)
    service_run(
        request,
        lambda: notices.individual_notices_send(**who(request), incident=incident),
        lambda sent: (
            f"{sent.portal} notices queued through the secure portal; "
            f"{sent.substitute} need a substitute notice."
        ),
    )
    return redirect("incidents:detail", incident_id=incident.pk)


@require_POST
@require_permission(PERMISSION)
def incident_close(request: TenantRequest, incident_id) -> HttpResponse:
    incident = incident_or_404(request, incident_id)
    service_run(
        request, lambda: services.incident_close(**who(request), incident=incident), "Incident closed."
    )
    return redirect("incidents:detail", incident_id=incident.pk)


@require_permission(PERMISSION)
def letter_preview(request: TenantRequest, incident_id) -> HttpResponse:
    incident = incident_or_404(request, incident_id)
    audience = request.GET.get("audience", "individuals")
    state = request.GET.get("state", "")[:2]
    try:
        with tenant_context(request.tenant):
            text = audience_notices.audience_letter(
                tenant=request.tenant, user=request.user, incident=incident, audience=audience, state=state
            )
    except (ApplicationError, KeyError):
        return render(request, "404.html", status=404)
    return render(
        request, "incidents/letter.html", {"incident": incident, "audience": audience, "text": text}
    )


@require_permission(PERMISSION)
def disclosures_accounting(request: TenantRequest) -> HttpResponse:
    """GET ?contact=<id>&format=json|pdf: the patient's signed accounting of disclosures (164.528)."""
    try:
        contact_id = uuid.UUID(request.GET.get("contact", ""))
    except ValueError:
        messages.error(request, "Enter the patient's contact id.")
        return redirect("incidents:list")
    kind = request.GET.get("format", "json")
    if kind not in ("json", "pdf"):
        messages.error(request, "Choose JSON or PDF.")
        return redirect("incidents:list")
    try:
        signed = accounting.accounting_build(
            tenant=request.tenant, actor=actor_of(request), contact_id=contact_id
        )
    except NotFound:
        return render(request, "404.html", status=404)
    if kind == "pdf":
        content, content_type = accounting.accounting_pdf(signed), "application/pdf"
    else:
        content, content_type = json.dumps(signed, indent=1, sort_keys=True).encode(), "application/json"
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="accounting-of-disclosures-{contact_id}.{kind}"'
    response["Cache-Control"] = "no-store"
    return response


def _access_rows(request: TenantRequest) -> list:
    today = timezone.localdate()
    professionals = access_denial_views.professionals(request.tenant)
    with tenant_context(request.tenant):
        rows = list(AccessRequest.objects.filter(tenant=request.tenant).select_related("denial", "fee"))
    return [
        {
            "row": row,
            "due": access_requests.due_on(row.received_on, extended=bool(row.extension_reason)),
            "may_extend": access_requests.extension_allowed(
                row.received_on, today, extended=bool(row.extension_reason)
            ),
            "denial": getattr(row, "denial", None),
            "fee": getattr(row, "fee", None),
            "deny_form": DenialForm(prefix=f"deny-{row.pk}", professionals=professionals),
            "fee_form": FeeForm(prefix=f"fee-{row.pk}"),
        }
        for row in rows
    ]


@require_permission(PERMISSION)
def access_request_list(request: TenantRequest) -> HttpResponse:
    form = AccessRequestForm(request.POST or None, initial={"received_on": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            access_requests.access_request_record(**who(request), **form.cleaned_data)
        except NotFound as error:
            form.add_error("contact_id", error.message)
        except ApplicationError as error:
            form.add_error(error.code if error.code in form.fields else None, error.message)
        else:
            messages.success(
                request, "Access request recorded. The 30-day clock runs from the date received."
            )
            return redirect("incidents:access_requests")
    context = {"form": form, "rows": _access_rows(request), "today": timezone.localdate()}
    return render(request, "incidents/access_requests.html", context, status=400 if form.errors else 200)


@require_POST
@require_permission(PERMISSION)
def access_request_extend(request: TenantRequest, request_id) -> HttpResponse:
    access = access_request_or_404(request, request_id)
    form_action_run(
        request,
        ExtensionForm(request.POST, prefix=f"extend-{access.pk}"),
        lambda data: access_requests.access_request_extend(
            **who(request), request=access, reason=data["reason"]
        ),
        "Extended by 30 days. Send the patient the reasons and the new date.",
        refused="Give the reasons for the delay.",
        reasons=False,
    )
    return redirect("incidents:access_requests")


@require_POST
@require_permission(PERMISSION)
def access_request_deliver(request: TenantRequest, request_id) -> HttpResponse:
    access = access_request_or_404(request, request_id)
    service_run(
        request,
        lambda: access_requests.access_request_deliver(**who(request), request=access),
        "The signed package was sent through the secure portal.",
    )
    return redirect("incidents:access_requests")

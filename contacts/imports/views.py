"""The import wizard: upload → map columns and options → job page with live progress → error report.

Thin: every rule lives in services. A foreign tenant's job id answers 404 like a missing one.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET

from audit import services as audit
from contacts.models import ImportJob
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, no_store, require_permission
from healthmail.errors import ApplicationError, Conflict, NotFound

from . import consent_columns, mapping, services
from .forms import MappingForm, UploadForm
from .preview import import_preview
from .reports import error_report_lines
from .storage import job_headers
from .uploads import SealedUpload, SealingUploadHandler

PERMISSION = "contacts.import"


def _job(request: TenantRequest, job_id) -> ImportJob:
    try:
        return services.import_job_get(tenant=request.tenant, job_id=job_id)
    except NotFound:
        raise Http404("No such import.") from None


@require_GET
@require_permission(PERMISSION)
def job_list(request: TenantRequest) -> HttpResponse:
    jobs = ImportJob.objects.for_tenant(request.tenant).select_related("created_by")[:50]
    return render(request, "contacts/imports/job_list.html", {"jobs": jobs})


# The file must be sealed as it streams in, so the upload handler is set before anything reads the
# body; CSRF is then checked by the inner view (the documented pattern for custom upload handlers).
@csrf_exempt
@require_permission(PERMISSION)
def upload(request: TenantRequest) -> HttpResponse:
    if request.method != "POST":
        return render(request, "contacts/imports/upload.html", {"form": UploadForm()})
    handler = SealingUploadHandler(request, tenant=request.tenant, actor=actor_of(request))
    request.upload_handlers = [handler]
    with transaction.atomic():
        response = _upload_post(request, handler)
        if response.status_code != 302:
            transaction.set_rollback(True)  # a refused file leaves no job and no sealed pieces
    return response


@csrf_protect
def _upload_post(request: TenantRequest, handler: SealingUploadHandler) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if handler.error:
        form.add_error(None, handler.error)
    elif form.is_valid() and isinstance(form.cleaned_data["file"], SealedUpload):
        try:
            job = services.import_upload_finish(
                writer=form.cleaned_data["file"].writer, actor=actor_of(request)
            )
        except ApplicationError as error:
            form.add_error("file", error.message)
        else:
            return redirect("contact_imports:job_map", job_id=job.pk)
    return render(request, "contacts/imports/upload.html", {"form": form}, status=400)


def _mapping_form(request: TenantRequest, job: ImportJob, data=None) -> MappingForm:
    targets = mapping.targets_for(tenant=request.tenant)
    headers = job_headers(job)
    return MappingForm(
        data,
        headers=headers,
        targets=targets,
        suggested=mapping.suggest(headers, targets),
        consent_topics=consent_columns.consent_topics(tenant=request.tenant),
    )


@require_permission(PERMISSION)
def job_map(request: TenantRequest, job_id) -> HttpResponse:
    job = _job(request, job_id)
    if job.status != ImportJob.Status.UPLOADED:
        return redirect("contact_imports:job_detail", job_id=job.pk)
    form = _mapping_form(request, job, request.POST if request.method == "POST" else None)
    preview = import_preview(
        job=job, actor=actor_of(request), mapping=form.chosen_mapping(), targets=form.targets
    )
    if request.htmx and request.method == "POST" and request.POST.get("preview"):
        form.is_valid()  # only to show each column's PHI class for the choices made so far
        return render(request, "contacts/imports/_mapping_rows.html", {"form": form, "preview": preview})
    if request.method == "POST" and form.is_valid():
        try:
            services.import_job_start(
                tenant=request.tenant, actor=actor_of(request), job=job, options=form.options()
            )
        except Conflict as error:
            messages.info(request, error.message)  # a double submit: the job runs once
            return redirect("contact_imports:job_detail", job_id=job.pk)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            return redirect("contact_imports:job_detail", job_id=job.pk)
    status = 400 if form.is_bound else 200
    context = {"job": job, "form": form, "preview": preview}
    return render(request, "contacts/imports/job_map.html", context, status=status)


@require_GET
@require_permission(PERMISSION)
def job_detail(request: TenantRequest, job_id) -> HttpResponse:
    job = _job(request, job_id)
    context = {"job": job, "progress": services.import_job_progress(job)}
    template = "contacts/imports/_job_progress.html" if request.htmx else "contacts/imports/job_detail.html"
    return render(request, template, context)


@require_GET
@require_permission(PERMISSION)
def error_report(request: TenantRequest, job_id) -> StreamingHttpResponse:
    job = _job(request, job_id)
    audit.record(
        actor=actor_of(request),
        action="contacts.import.error_report",
        target=job,
        tenant=request.tenant,
        details={"errors": job.error_count},
    )
    response = StreamingHttpResponse(error_report_lines(job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-errors-{job.pk}.csv"'
    return no_store(response)

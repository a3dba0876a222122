"""Forms for the platform-admin and organization-settings pages. Input checks only; rules live in
services (the date rules are shared through `baa_check_dates`)."""

from __future__ import annotations

import hashlib
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from healthmail.errors import ApplicationError

from .models import Service, validate_timezone
from .services import SubcontractorEntry, baa_check_dates


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def file_sha256(uploaded: UploadedFile[Any]) -> str:
    """SHA-256 of an uploaded file, read in chunks. The file itself is never stored."""
    digest = hashlib.sha256()
    for chunk in uploaded.chunks():
        digest.update(chunk)
    return digest.hexdigest()


def parse_subcontractor_lines(text: str) -> list[SubcontractorEntry]:
    """`name | what it does with PHI`, one per line; blank lines ignored."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, separator, service = (part.strip() for part in line.partition("|"))
        if not separator or not name or not service:
            raise forms.ValidationError(
                f"Line {number}: write “name | what it does with PHI”.", code="subcontractor_line"
            )
        if len(name) > 200 or len(service) > 200:
            raise forms.ValidationError(f"Line {number}: at most 200 characters per part.", code="too_long")
        entries.append(SubcontractorEntry(name=name, service=service))
    return entries


class TimezoneField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("validators", [validate_timezone])
        kwargs.setdefault("help_text", "An IANA time zone such as America/New_York or America/Chicago.")
        super().__init__(**kwargs)


class TenantCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=63,
        label="Short name",
        help_text="Lowercase letters, digits and hyphens; cannot change later.",
    )
    postal_address = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Physical postal address for the CAN-SPAM footer."
    )
    timezone = TimezoneField(initial="America/New_York")


class TenantSettingsForm(forms.Form):
    postal_address = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Physical postal address printed in every marketing email (CAN-SPAM).",
    )
    timezone = TimezoneField()
    idle_timeout_minutes = forms.IntegerField(
        label="Idle timeout (minutes)",
        min_value=1,
        max_value=60,
        help_text="Sign people out after this many minutes without activity (1 to 60).",
    )


class TenantStatusForm(forms.Form):
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 2}), help_text="Recorded in the audit trail."
    )


class BaaForm(forms.Form):
    counterparty = forms.CharField(max_length=200, help_text="The covered entity signing with us.")
    signed_on = forms.DateField(widget=_date_input())
    effective_on = forms.DateField(widget=_date_input())
    expires_on = forms.DateField(
        required=False, widget=_date_input(), help_text="Leave empty: until terminated."
    )
    signatory_name = forms.CharField(max_length=200)
    signatory_title = forms.CharField(max_length=200, required=False)
    document = forms.FileField(
        label="Signed document",
        help_text="Only its SHA-256 fingerprint is kept; the file itself is not stored.",
    )
    services = forms.MultipleChoiceField(
        choices=Service.choices, widget=forms.CheckboxSelectMultiple, label="Services covered"
    )
    breach_notification_days = forms.IntegerField(
        initial=60,
        min_value=1,
        max_value=60,
        label="Breach notification (days)",
        help_text="HIPAA allows at most 60 days.",
    )
    subcontractors = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: name | what it does with PHI (e.g. “Example Hosting | database hosting”).",
    )

    def clean_document(self) -> UploadedFile[Any]:
        document: UploadedFile[Any] = self.cleaned_data["document"]
        self.cleaned_data["document_sha256"] = file_sha256(document)
        return document

    def clean_subcontractors(self) -> list[SubcontractorEntry]:
        return parse_subcontractor_lines(self.cleaned_data.get("subcontractors") or "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        signed, effective = cleaned.get("signed_on"), cleaned.get("effective_on")
        if signed and effective:
            try:
                baa_check_dates(
                    signed_on=signed, effective_on=effective, expires_on=cleaned.get("expires_on")
                )
            except ApplicationError as error:
                field = "expires_on" if error.code == "expiry_not_after_effective" else "effective_on"
                self.add_error(field, error.message)
        return cleaned


class BaaTerminateForm(forms.Form):
    terminated_on = forms.DateField(
        label="Terminated on",
        widget=_date_input(),
        initial=timezone.localdate,
        help_text="PHI stops flowing from this date.",
    )
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 2}), help_text="Recorded in the audit trail."
    )

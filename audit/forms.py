from typing import cast

from django import forms

from healthmail.accounts.roles import Role

from .models import AuditEvent
from .selectors import EventFilter

PATIENT_RECORD = "contacts.contact"


class EventFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=64, help_text="User id, API key prefix or component.")
    action = forms.CharField(
        required=False,
        max_length=64,
        help_text="Pick an action from the list as you type, or a prefix ending in “.” (e.g. “campaign.”).",
        widget=forms.TextInput(attrs={"list": "audit-actions"}),
    )
    target = forms.CharField(required=False, max_length=130, help_text="Object id, or type:id.")
    contact = forms.UUIDField(
        required=False,
        label="Patient (contact id)",
        help_text="Every event that concerns this contact. Use “Find the patient” to look one up.",
    )
    outcome = forms.ChoiceField(required=False, choices=[("", "Any"), *AuditEvent.Outcome.choices])
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start date must not be after the end date.")
        return data

    def filters(self) -> EventFilter:
        names = EventFilter.__dataclass_fields__
        return EventFilter(**{k: v for k, v in self.cleaned_data.items() if v and k in names})


class ExportForm(EventFilterForm):
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON")])
    # The newest event the officer was shown: events written later are not part of "these events".
    through_id = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class PatientLookupForm(forms.Form):
    """An exact identifier, never a partial one: a lookup finds one person, it does not browse."""

    identifier = forms.CharField(
        max_length=254,
        label="Find the patient",
        help_text="Exact email, phone, MRN or external id (system:id). The lookup is recorded.",
    )


class BreakGlassForm(forms.Form):
    target_type = forms.ChoiceField(label="Kind of record")
    patient = forms.CharField(
        max_length=254,
        required=False,
        label="Find the patient",
        help_text="For a contact: exact email, phone, MRN or external id (system:id). "
        "The lookup is recorded.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    target_id = forms.CharField(max_length=64, required=False, label="Or the record id")
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=500,
        help_text="The emergency that requires this access. Compliance officers are alerted.",
    )
    minutes = forms.IntegerField(min_value=1, max_value=60, initial=30, label="Minutes of access")

    def __init__(self, *args, targets: dict, **kwargs):
        super().__init__(*args, **kwargs)
        target_type = cast(forms.ChoiceField, self.fields["target_type"])  # declared a ChoiceField above
        target_type.choices = [(label, model._meta.verbose_name) for label, model in targets.items()]

    def clean(self):
        data = super().clean()
        if not data.get("patient") and not data.get("target_id"):
            raise forms.ValidationError("Find the patient, or give the record id.")
        if data.get("patient") and data.get("target_type") != PATIENT_RECORD:
            self.add_error("patient", "A patient lookup opens the contact record: choose that kind.")
        return data


class AuditPolicyForm(forms.Form):
    reviewer_roles = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Also reviewing the audit trail",
        choices=[(r.value, r.label) for r in Role if r != Role.COMPLIANCE_OFFICER],
        help_text="Compliance officers always review it.",
    )
    retention_years = forms.IntegerField(
        min_value=1,
        max_value=100,
        label="Keep the audit trail (years)",
        help_text="At least 6 years (HIPAA).",
    )

"""Forms of the retention pages: parsing only; the rules live in the services."""

from __future__ import annotations

import uuid

from django import forms

from .models import Action
from .registry import all_categories


def _category_choices(destroyable_only: bool = False) -> list[tuple[str, str]]:
    return [(c.key, c.label) for c in all_categories() if c.destroyable or not destroyable_only]


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


class UuidLinesField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3})

    def clean(self, value):
        value = super().clean(value)
        try:
            return tuple(dict.fromkeys(uuid.UUID(line) for line in _lines(value or "")))
        except ValueError:
            raise forms.ValidationError("One id per line (UUIDs, as shown on the contact page).") from None


class LinesField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 2})

    def clean(self, value):
        return tuple(_lines(super().clean(value) or ""))


class PolicyForm(forms.Form):
    min_retention_days = forms.IntegerField(min_value=0, label="Minimum retention (days)")
    max_retention_days = forms.IntegerField(
        min_value=0, required=False, label="Maximum retention (days)", help_text="Empty: no maximum."
    )
    archive_after_days = forms.IntegerField(
        min_value=0, required=False, label="Move to archive after (days)", help_text="Empty: never archived."
    )
    action = forms.ChoiceField(choices=Action.choices, label="At the end of the maximum")
    approval_required = forms.BooleanField(required=False, label="Disposal runs need approval")
    legal_basis = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
        label="Legal basis",
        help_text="One rule per line: citation | rule | years | where it applies (empty: always).",
    )
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    reason = forms.CharField(max_length=500, label="Reason for this change")

    def clean_legal_basis(self) -> list[dict]:
        rows = []
        for line in (self.cleaned_data["legal_basis"] or "").splitlines():
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("|")] + ["", "", "", ""]
            try:
                years = float(parts[2]) if parts[2] else None
            except ValueError:
                raise forms.ValidationError(f"“{parts[2]}” is not a number of years.") from None
            rows.append({"citation": parts[0], "rule": parts[1], "years": years, "applies": parts[3]})
        return rows

    @staticmethod
    def initial_from(policy) -> dict:
        if policy is None:
            return {}
        lines = [
            " | ".join(
                [
                    b["citation"],
                    b["rule"],
                    "" if b.get("years") is None else str(b["years"]),
                    b.get("applies", ""),
                ]
            )
            for b in policy.legal_basis
        ]
        return {
            "min_retention_days": policy.min_retention_days,
            "max_retention_days": policy.max_retention_days,
            "archive_after_days": policy.archive_after_days,
            "action": policy.action,
            "approval_required": policy.approval_required,
            "legal_basis": "\n".join(lines),
            "rationale": policy.rationale,
        }


class PatientsField(forms.CharField):
    """Exact identifiers, one per line: the view finds each patient through the blind indexes."""

    widget = forms.Textarea(attrs={"rows": 2, "autocomplete": "off"})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Find the patients")
        kwargs.setdefault(
            "help_text",
            "Exact email, phone, MRN or external id (system:id), one per line. Each lookup is recorded.",
        )
        super().__init__(**kwargs)

    def clean(self, value):
        return tuple(line.strip() for line in (super().clean(value) or "").splitlines() if line.strip())


class HoldForm(forms.Form):
    matter = forms.CharField(max_length=200, label="Matter name")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=1000)
    counsel = forms.CharField(max_length=200)
    patients = PatientsField()
    contact_ids = UuidLinesField(required=False, label="Contacts (ids)")
    sources = LinesField(
        required=False, label="Campaigns or sources", help_text="e.g. campaign:<id>, one per line."
    )
    categories = forms.MultipleChoiceField(
        choices=_category_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Record categories",
    )
    date_from = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Records from"
    )
    date_to = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Records to"
    )
    custodians = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.CheckboxSelectMultiple, label="Custodians to notify"
    )
    free_query = forms.CharField(
        max_length=1000,
        required=False,
        label="Contacts matching (segment definition)",
        help_text='Optional JSON in the segment language, e.g. {"all": [{"field": "state", "op": "in", '
        '"value": ["CA"]}]}: the contacts it matches now are held.',
    )
    review_every_days = forms.IntegerField(
        min_value=7, max_value=365, initial=90, label="Review every (days)"
    )

    def __init__(self, *args, members=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["custodians"].choices = [(str(m.user_id), m.user.email) for m in members]


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class ExceptionForm(forms.Form):
    category = forms.ChoiceField(choices=lambda: _category_choices(destroyable_only=True))
    record_ids = LinesField(label="Record ids", help_text="One per line.")
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))
    extend_until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Keep until")


class SearchForm(forms.Form):
    reason = forms.CharField(
        max_length=500, label="Reason for this search", help_text="Recorded in the audit trail."
    )
    contact_id = forms.UUIDField(required=False, label="Contact id")
    source = forms.CharField(
        max_length=100, required=False, label="Campaign or source", help_text="e.g. campaign:<id>"
    )
    categories = forms.MultipleChoiceField(
        choices=_category_choices, required=False, widget=forms.CheckboxSelectMultiple, label="Categories"
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")


class ExportForm(forms.Form):
    purpose = forms.CharField(max_length=500, label="Purpose")
    recipient = forms.CharField(
        max_length=200, label="Recipient", help_text="Counsel or auditor receiving it."
    )
    hold = forms.ChoiceField(choices=[], required=False, label="Scope of a legal hold")
    patients = PatientsField()
    contact_ids = UuidLinesField(required=False, label="Contacts (ids)")
    sources = LinesField(required=False, label="Campaigns or sources")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def __init__(self, *args, holds=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hold"].choices = [("", "— none —")] + [(str(h.pk), h.matter) for h in holds]

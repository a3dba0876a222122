from __future__ import annotations

from django import forms

from healthmail.crypto.fields import PhiClass

from .models import CustomField


class ContactSearchForm(forms.Form):
    """Sent by POST: an email or phone number must never travel in a URL."""

    q = forms.CharField(
        label="Find a contact",
        max_length=254,
        help_text="An exact email address, phone number or external id (e.g. epic:12345).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class UnmaskForm(forms.Form):
    reason = forms.CharField(
        label="Reason for unmasking",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Recorded in the audit trail with your name. Compliance officers review it.",
    )


class CustomFieldForm(forms.Form):
    key = forms.SlugField(max_length=50, help_text="Used in imports and the API, e.g. member_tier.")
    label = forms.CharField(max_length=100)
    field_type = forms.ChoiceField(label="Type", choices=CustomField.Type.choices)
    phi_class = forms.ChoiceField(
        label="PHI class",
        choices=PhiClass.choices,
        initial=PhiClass.DEMOGRAPHIC,
        help_text="Every custom value is encrypted; the class decides masking and retention.",
    )
    choices = forms.CharField(
        required=False, help_text="For a choice field: the allowed values, separated by commas."
    )
    segmentable = forms.BooleanField(
        required=False, help_text="Keep a keyed token so segments can match this field exactly."
    )

    def clean_choices(self) -> list[str]:
        return [part.strip() for part in self.cleaned_data["choices"].split(",") if part.strip()]

from __future__ import annotations

from django import forms


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(max_length=500, required=False)
    # Read by the view only when an admin saves from the JSON box (see views._rows_or_json).
    definition = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        required=False,
        help_text="The definition as the API reads it. Saving from here replaces the rules above.",
        label="Definition (JSON)",
    )

from __future__ import annotations

import json

from django import forms


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(max_length=500, required=False)
    definition = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        initial='{"all": []}',
        help_text="Built by the editor above; you may also edit the JSON directly.",
        label="Definition (JSON)",
    )

    def clean_definition(self):
        try:
            return json.loads(self.cleaned_data["definition"])
        except ValueError:
            raise forms.ValidationError("This is not valid JSON.") from None

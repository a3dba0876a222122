"""The import wizard's forms: the file, then one choice per column plus the options."""

from __future__ import annotations

from typing import cast

from django import forms
from django.conf import settings

from .consent_columns import SOURCES
from .mapping import Target
from .services import ImportOptions

IGNORE = ""


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV or Excel file",
        help_text="",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.xlsx,text/csv"}),
        error_messages={"empty": "The file is empty: it has no header row and no data rows."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit_mb = settings.CONTACT_IMPORT_MAX_BYTES // (1024 * 1024)
        self.fields["file"].help_text = (
            f"UTF-8 CSV (comma, semicolon, tab or | separated) or .xlsx, first row naming the columns, "
            f"up to {limit_mb} MB. The file is encrypted on arrival and destroyed when the import ends."
        )


def target_choices(targets: dict[str, Target]) -> list:
    groups: dict[str, list[tuple[str, str]]] = {}
    for target in targets.values():
        groups.setdefault(target.group, []).append((target.key, target.label))
    return [(IGNORE, "— Ignore this column —"), *groups.items()]


class MappingForm(forms.Form):
    dry_run = forms.BooleanField(
        required=False,
        label="Dry run: check every row and report errors, but save nothing",
    )
    external_id_system = forms.CharField(
        required=False,
        max_length=32,
        label="External id system",
        help_text="Which system the External id column comes from (e.g. epic); rows update the contact "
        "with the same id from that system.",
    )
    consent_topic = forms.ChoiceField(required=False, label="Consent topic for every row")
    consent_source = forms.ChoiceField(
        required=False,
        label="Where every row's consent was given",
        choices=[("", "— From a column, or no consent evidence —"), *SOURCES.items()],
    )

    def __init__(self, *args, headers: list[str], targets: dict[str, Target], suggested: dict[int, str],
                 consent_topics: list[tuple[str, str]], **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.headers = headers
        self.targets = targets
        choices = target_choices(targets)
        for index, header in enumerate(headers):
            self.fields[f"column_{index}"] = forms.ChoiceField(
                required=False,
                choices=choices,
                initial=suggested.get(index, IGNORE),
                label=header or f"Column {index + 1}",
            )
        topic_field = cast(forms.ChoiceField, self.fields["consent_topic"])  # declared a ChoiceField
        topic_field.choices = [
            ("", "— From a column, or no consent evidence —"),
            *consent_topics,
        ]
        if not consent_topics:
            self.fields["consent_topic"].disabled = True
            self.fields["consent_topic"].help_text = "Consent evidence import is not available yet."

    def column_rows(self) -> list[dict]:
        """One row per column for the mapping table: its field and the PHI class of its target."""
        rows = []
        for index, header in enumerate(self.headers):
            bound = self[f"column_{index}"]
            key = bound.value() or IGNORE
            target = self.targets.get(key)
            rows.append({
                "header": header or f"Column {index + 1}",
                "field": bound,
                "phi": target.phi_label if target else "Ignored: not imported",
                "is_phi": bool(target and target.phi_class),
            })  # fmt: skip
        return rows

    def chosen_mapping(self) -> dict[int, str]:
        """Column index → target key as chosen so far (or suggested), for the preview."""
        chosen = {index: self[f"column_{index}"].value() or IGNORE for index in range(len(self.headers))}
        return {index: key for index, key in chosen.items() if key != IGNORE and key in self.targets}

    def options(self) -> ImportOptions:
        data = self.cleaned_data
        return ImportOptions(
            mapping={i: data[f"column_{i}"] for i in range(len(self.headers)) if data.get(f"column_{i}")},
            dry_run=data["dry_run"],
            external_id_system=data["external_id_system"],
            consent_topic=data.get("consent_topic") or "",
            consent_source=data.get("consent_source") or "",
        )

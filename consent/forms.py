"""Forms for the staff consent pages and the public patient pages. Rules live in the services."""

from __future__ import annotations

from django import forms
from django.utils import timezone

from .authorization_rules import CONDITIONABLE, Combined
from .models import (
    AUTHORIZATION_TEXT_ELEMENTS,
    MEDIA_TEXT_ELEMENTS,
    AuthorizationKind,
    AuthorizationText,
    ConsentSettings,
    FormSource,
    Frequency,
    Initiator,
    Purpose,
    Source,
    Suppression,
    Topic,
)

_TEXTAREA = forms.Textarea(attrs={"rows": 3})


# --- Staff ---------------------------------------------------------------------------------------


class ConsentRecordForm(forms.Form):
    """Evidence staff received outside the web (a paper form, a phone call)."""

    topic = forms.ModelChoiceField(queryset=Topic.objects.none(), label="Topic")
    action = forms.ChoiceField(choices=[("granted", "Opted in"), ("revoked", "Opted out")], label="Change")
    source = forms.ChoiceField(
        choices=[(s, Source(s).label) for s in (Source.PAPER, Source.VERBAL, Source.WEB_FORM)],
        label="Evidence",
    )
    occurred_on = forms.DateField(
        label="Date received", widget=forms.DateInput(attrs={"type": "date"}), initial=timezone.localdate
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["topic"].queryset = Topic.objects.for_tenant(tenant)

    def clean_occurred_on(self):
        value = self.cleaned_data["occurred_on"]
        if value > timezone.localdate():
            raise forms.ValidationError("The date cannot be in the future.")
        return value


class AuthorizationRecordForm(forms.Form):
    """A signed authorization received on paper or from another system. Only shapes are checked
    here; the record service decides validity (45 CFR 164.508) and reports every defect."""

    text = forms.ModelChoiceField(queryset=AuthorizationText.objects.none(), label="Document signed")
    signer_name = forms.CharField(label="Name as signed", max_length=200, required=False)
    signed_on = forms.DateField(
        label="Date next to the signature", widget=forms.DateInput(attrs={"type": "date"})
    )
    by_representative = forms.BooleanField(label="Signed by a personal representative", required=False)
    representative_authority = forms.CharField(
        label="Their authority (e.g. parent of a minor, guardian)", required=False, max_length=300
    )
    expires_on = forms.DateField(
        label="Expiration date on the form", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    expiry_event = forms.CharField(
        label="Or the expiration event on the form", required=False, max_length=300
    )
    initiated_by = forms.ChoiceField(choices=Initiator.choices, label="Who asked for it")
    combined_with = forms.MultipleChoiceField(
        choices=[(c, c.replace("_", " ")) for c in Combined.ALL],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Other documents on the same form",
    )
    conditioned_on = forms.MultipleChoiceField(
        choices=[(c, c) for c in CONDITIONABLE],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Made a condition of",
    )
    form_source = forms.ChoiceField(choices=FormSource.choices, label="Where the signed form is")
    scan = forms.FileField(label="Scanned signed form", required=False)

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["text"].queryset = AuthorizationText.objects.for_tenant(tenant).filter(
            kind__in=[AuthorizationKind.MARKETING, AuthorizationKind.RESEARCH]
        )


class SigningLinkForm(forms.Form):
    text = forms.ModelChoiceField(queryset=AuthorizationText.objects.none(), label="Document")

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["text"].queryset = AuthorizationText.objects.for_tenant(tenant)


class AuthorizationTextForm(forms.Form):
    kind = forms.ChoiceField(choices=AuthorizationKind.choices, label="Kind")
    title = forms.CharField(max_length=200, label="Title")
    expiry_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="Ends after (days)",
        help_text="Leave empty when it ends with an event described under “Expiration”.",
    )
    remuneration_involved = forms.BooleanField(required=False, label="We receive payment for this marketing")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        labels = {**AUTHORIZATION_TEXT_ELEMENTS, **MEDIA_TEXT_ELEMENTS}
        labels["remuneration_statement"] = "the remuneration we receive (required when payment is involved)"
        for key, label in labels.items():
            # Not required here: the service names every missing element, in the order of the rule.
            self.fields[key] = forms.CharField(
                required=False, widget=_TEXTAREA, label=label[0].upper() + label[1:], max_length=5000
            )
        self.order_fields(
            [
                "kind",
                "title",
                *AUTHORIZATION_TEXT_ELEMENTS,
                "expiry_days",
                "remuneration_involved",
                "remuneration_statement",
                *MEDIA_TEXT_ELEMENTS,
            ]
        )


class SuppressionAddForm(forms.Form):
    email = forms.EmailField(label="Email address", help_text="Only a keyed hash of the address is stored.")
    reason = forms.ChoiceField(
        choices=[
            (r, Suppression.Reason(r).label)
            for r in (Suppression.Reason.MANUAL, Suppression.Reason.LEGAL_REQUEST)
        ]
    )
    note = forms.CharField(
        required=False, max_length=200, label="Reference", help_text="A ticket number; no PHI."
    )


class SuppressionRemoveForm(forms.Form):
    reason = forms.CharField(max_length=200, label="Why remove it?")


class ConsentSettingsForm(forms.Form):
    operating_states = forms.CharField(
        required=False,
        label="States we operate in",
        help_text="Two-letter codes separated by commas, e.g. CA, WA.",
    )
    state_mode = forms.ChoiceField(choices=ConsentSettings.StateMode.choices, label="How state rules apply")
    allow_unencrypted_waivers = forms.BooleanField(
        required=False, label="Honour patients' requests for unencrypted email"
    )
    reminder_days_before_expiry = forms.IntegerField(
        min_value=1, max_value=180, label="Renewal reminder (days before an authorization ends)"
    )

    def clean_operating_states(self) -> list[str]:
        return [s.strip().upper() for s in self.cleaned_data["operating_states"].split(",") if s.strip()]


class TopicForm(forms.Form):
    key = forms.SlugField(max_length=50, label="Short key", help_text="Letters, digits, dashes, underscores.")
    name = forms.CharField(max_length=100, label="Name shown to patients")
    purpose = forms.ChoiceField(
        choices=[(p, Purpose(p).label) for p in (Purpose.MARKETING, Purpose.RESEARCH, Purpose.FUNDRAISING)]
    )
    description = forms.CharField(max_length=300, required=False)


# --- Public (patients) -----------------------------------------------------------------------------


class SignForm(forms.Form):
    signer_name = forms.CharField(
        max_length=200,
        label="Type your full name as your signature",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),  # input purpose, WCAG 1.3.5
    )
    signed_on = forms.DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    intent = forms.BooleanField(
        label="I have read this authorization and I sign it electronically.",
        error_messages={"required": "Tick this box to sign."},
    )
    by_representative = forms.BooleanField(
        required=False, label="I am signing for the patient as their personal representative"
    )
    representative_authority = forms.CharField(
        required=False,
        max_length=300,
        label="Your authority to sign for the patient",
        help_text="For example: parent of a minor, legal guardian, health-care power of attorney.",
    )

    def clean(self):
        data = super().clean()
        if data.get("by_representative") and not (data.get("representative_authority") or "").strip():
            self.add_error("representative_authority", "Describe your authority to sign for the patient.")
        return data


class PreferencesForm(forms.Form):
    frequency = forms.ChoiceField(choices=Frequency.choices, label="How often")
    paused_until = forms.DateField(
        required=False, label="Pause all of these until", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, topics: list[Topic], **kwargs):
        super().__init__(*args, **kwargs)
        self.topics = topics
        for topic in topics:
            self.fields[f"topic_{topic.key}"] = forms.BooleanField(
                required=False, label=topic.name, help_text=topic.description
            )
        self.order_fields([f"topic_{t.key}" for t in topics] + ["frequency", "paused_until"])

    def chosen_topics(self) -> dict[Topic, bool]:
        return {topic: bool(self.cleaned_data.get(f"topic_{topic.key}")) for topic in self.topics}


class WaiverForm(forms.Form):
    purposes = forms.MultipleChoiceField(
        choices=Purpose.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Email I agree to receive without encryption",
    )
    understood = forms.BooleanField(label="I have read the explanation of the risk above.")


class WaiverRecordForm(forms.Form):
    """A waiver of encryption the patient gave outside the web; staff record it with the evidence."""

    purposes = forms.MultipleChoiceField(
        choices=Purpose.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Email that may go without encryption",
    )
    source = forms.ChoiceField(
        choices=[(s, Source(s).label) for s in (Source.PAPER, Source.VERBAL)], label="Received"
    )
    received_on = forms.DateField(
        label="Date received", widget=forms.DateInput(attrs={"type": "date"}), initial=timezone.localdate
    )
    document = forms.FileField(label="Scanned signed paper (optional)", required=False)
    explained = forms.BooleanField(label="The patient was given the current risk explanation.")

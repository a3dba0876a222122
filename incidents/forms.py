from __future__ import annotations

from django import forms

from .affected import ACTOR_TYPES
from .models import AccessDenial, AccessFee, Evidence, Incident, LawEnforcementDelay
from .services import FACTORS

_TEXT = {"rows": 3}


class IncidentForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(
        label="What happened", widget=forms.Textarea(attrs=_TEXT), help_text="Plain words, no PHI values."
    )
    how_discovered = forms.CharField(label="How it was discovered", max_length=500)
    discovered_on = forms.DateField(
        label="Discovery date",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The first day it was known, or would have been known with reasonable diligence: "
        "the notification clock starts here.",
    )
    business_associate = forms.BooleanField(
        label="Discovered by a business associate (the BAA's notice term applies)", required=False
    )
    alert = forms.UUIDField(required=False, widget=forms.HiddenInput)


class EvidenceForm(forms.Form):
    kind = forms.ChoiceField(label="Kind of evidence", choices=Evidence.Kind.choices)
    reference = forms.CharField(
        label="Id", max_length=64, help_text="The audit event number or the record's id."
    )
    note = forms.CharField(label="Note", max_length=500, required=False)


class DeriveForm(forms.Form):
    since = forms.DateTimeField(
        label="From (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        label="Until (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    actor_type = forms.ChoiceField(
        label="Actor kind", required=False, choices=[("", "Any actor"), *[(a, a) for a in ACTOR_TYPES]]
    )
    actor_id = forms.CharField(
        label="Actor id", required=False, max_length=64, help_text="A user id, API key prefix or system name."
    )


class AssessmentForm(forms.Form):
    factor_nature = forms.CharField(
        label="1. Nature and extent of the PHI involved", widget=forms.Textarea(attrs=_TEXT)
    )
    factor_recipient = forms.CharField(
        label="2. Who used it or received it", widget=forms.Textarea(attrs=_TEXT)
    )
    factor_acquired = forms.CharField(
        label="3. Was it actually acquired or viewed", widget=forms.Textarea(attrs=_TEXT)
    )
    factor_mitigated = forms.CharField(
        label="4. How far the risk was mitigated", widget=forms.Textarea(attrs=_TEXT)
    )
    probability = forms.ChoiceField(
        label="Conclusion", choices=Incident.Probability.choices, widget=forms.RadioSelect
    )

    def factors(self) -> dict[str, str]:
        return {name: self.cleaned_data[name] for name, _ in FACTORS}


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label="Decision", choices=Incident.Decision.choices, widget=forms.RadioSelect
    )
    reason = forms.CharField(label="Reasoning", widget=forms.Textarea(attrs=_TEXT))


class SignOffForm(forms.Form):
    sole_officer_reason = forms.CharField(
        label="If nobody else can sign off: why you sign alone",
        required=False,
        widget=forms.Textarea(attrs=_TEXT),
    )


class RejectForm(forms.Form):
    reason = forms.CharField(label="Why the proposal goes back", widget=forms.Textarea(attrs=_TEXT))


class LetterForm(forms.Form):
    phi_types = forms.CharField(label="Types of information involved", max_length=500)
    steps_for_individuals = forms.CharField(
        label="Steps individuals should take", widget=forms.Textarea(attrs=_TEXT)
    )
    what_we_are_doing = forms.CharField(
        label="What we are doing to investigate, mitigate and prevent", widget=forms.Textarea(attrs=_TEXT)
    )
    contact_procedures = forms.CharField(
        label="How to reach us (toll-free number, email, website or postal address)",
        widget=forms.Textarea(attrs=_TEXT),
    )


class AccessRequestForm(forms.Form):
    contact_id = forms.UUIDField(label="Patient's contact id")
    received_on = forms.DateField(
        label="Date received",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The 30-day clock starts here (164.524(b)(2)).",
    )


class ExtensionForm(forms.Form):
    reason = forms.CharField(
        label="Reasons for the delay (sent to the patient in writing)", widget=forms.Textarea(attrs=_TEXT)
    )


class PolicyForm(forms.Form):
    title = forms.CharField(
        max_length=200, help_text="Publishing under an existing title makes a new version of that policy."
    )
    text = forms.CharField(label="Policy text", widget=forms.Textarea(attrs={"rows": 8}))


class AudienceNoticeForm(forms.Form):
    audience = forms.CharField(max_length=40, widget=forms.HiddenInput)
    state = forms.CharField(max_length=2, required=False, widget=forms.HiddenInput)


class AudienceSentForm(AudienceNoticeForm):
    sent_on = forms.DateField(label="Date sent", widget=forms.DateInput(attrs={"type": "date"}))
    channel = forms.CharField(label="Sent through", max_length=200)
    reference = forms.CharField(
        label="Reference (e.g. HHS portal confirmation)", max_length=200, required=False
    )


class DelayForm(forms.Form):
    kind = forms.ChoiceField(
        label="The statement was", choices=LawEnforcementDelay.Kind.choices, widget=forms.RadioSelect
    )
    ground = forms.ChoiceField(
        label="The official stated that a notice", choices=LawEnforcementDelay.Ground.choices
    )
    official = forms.CharField(label="Official (name, title and agency)", max_length=300)
    stated_on = forms.DateField(label="Date of the statement", widget=forms.DateInput(attrs={"type": "date"}))
    delay_until = forms.DateField(
        label="Delay until (written statement: the date it names)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="An oral statement delays notices for at most 30 days from the statement.",
    )
    statement = forms.CharField(label="What the official stated", widget=forms.Textarea(attrs=_TEXT))


class DenialForm(forms.Form):
    ground = forms.ChoiceField(
        label="Ground (164.524(a)(2) unreviewable, (a)(3) reviewable)", choices=AccessDenial.Ground.choices
    )
    in_part = forms.BooleanField(label="Denied in part only (the rest is delivered)", required=False)
    basis = forms.CharField(label="Basis, in plain language", widget=forms.Textarea(attrs=_TEXT))
    complaint_contact = forms.CharField(label="Contact for complaints (name or title)", max_length=200)
    complaint_phone = forms.CharField(label="Its telephone number", max_length=40)
    determined_by_id = forms.ChoiceField(
        label="Licensed professional who determined it (reviewable grounds)", required=False, choices=[]
    )
    determined_license = forms.CharField(label="Their license", max_length=100, required=False)

    def __init__(self, *args, professionals=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["determined_by_id"].choices = [("", "None (unreviewable ground)"), *professionals]


class FeeForm(forms.Form):
    copy_form = forms.ChoiceField(label="Form of the copy", choices=AccessFee.CopyForm.choices)
    mailed = forms.BooleanField(label="Mailed at the individual's request", required=False)
    summary_agreed = forms.BooleanField(label="The individual agreed to a summary", required=False)
    labor_cents = forms.IntegerField(label="Labor for copying (cents)", min_value=0, initial=0)
    supplies_cents = forms.IntegerField(
        label="Supplies: paper or portable media (cents)", min_value=0, initial=0
    )
    postage_cents = forms.IntegerField(label="Postage (cents)", min_value=0, initial=0)
    summary_cents = forms.IntegerField(label="Preparing the summary (cents)", min_value=0, initial=0)


class DenialReviewForm(forms.Form):
    outcome = forms.ChoiceField(
        label="Your determination", choices=AccessDenial.Outcome.choices, widget=forms.RadioSelect
    )
    license = forms.CharField(label="Your license", max_length=100)
    reason = forms.CharField(
        label="Your reasons (sent to the individual)", widget=forms.Textarea(attrs=_TEXT)
    )

"""Web forms for templates, blocks, branding and campaigns: parsing and choices only; every rule is
checked by the services (which the views call with the cleaned data)."""

from __future__ import annotations

from django import forms

from consent.models import Purpose, Topic
from delivery.models import EncryptionPolicy, SenderDomain
from segmentation.models import Segment

from .models import Campaign, Goal, Metric, Template
from .selectors import template_list

TEXTAREA = {"rows": 12, "spellcheck": "false", "class": "code"}


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=Template.Kind.choices, initial=Template.Kind.MARKETING)
    description = forms.CharField(max_length=300, required=False)
    language = forms.CharField(max_length=12, initial="en", help_text="A language code, e.g. en or es.")
    subject = forms.CharField(max_length=300, help_text="Merge fields like {{ contact.first_name }}; no PHI.")
    preheader = forms.CharField(
        max_length=300, required=False, help_text="Shown next to the subject in inboxes."
    )
    html = forms.CharField(label="HTML", widget=forms.Textarea(attrs=TEXTAREA))
    text = forms.CharField(
        label="Text part",
        required=False,
        widget=forms.Textarea(attrs={**TEXTAREA, "rows": 6}),
        help_text="Leave empty to generate it from the HTML.",
    )
    make_default = forms.BooleanField(label="Default language", required=False)


class DesignForm(forms.Form):
    """The block editor's fields; `mjml` is filled by the editor script when the form is submitted."""

    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=Template.Kind.choices, initial=Template.Kind.MARKETING)
    language = forms.CharField(max_length=12, initial="en", help_text="A language code, e.g. en or es.")
    subject = forms.CharField(max_length=300, help_text="Merge fields like {{ contact.first_name }}; no PHI.")
    preheader = forms.CharField(
        max_length=300, required=False, help_text="Shown next to the subject in inboxes."
    )
    mjml = forms.CharField(label="MJML", widget=forms.HiddenInput, required=False)


class TestSendForm(forms.Form):
    address = forms.EmailField(label="Send a test to", help_text="A member of this organization.")
    language = forms.CharField(max_length=12, required=False, widget=forms.HiddenInput)


class BlockForm(forms.Form):
    key = forms.SlugField(max_length=50, help_text='Include it with {% include "key" %}.')
    name = forms.CharField(max_length=100)
    html = forms.CharField(label="HTML", widget=forms.Textarea(attrs=TEXTAREA))


class BrandingForm(forms.Form):
    sender_name = forms.CharField(max_length=100)
    logo_url = forms.CharField(label="Logo URL (https)", max_length=500, required=False)
    primary_color = forms.CharField(max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    background_color = forms.CharField(max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    text_color = forms.CharField(max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    footer_text = forms.CharField(
        max_length=300, required=False, help_text="An extra line above the legal footer."
    )


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=120)
    goal = forms.ChoiceField(choices=Goal.choices)
    primary_metric = forms.ChoiceField(
        choices=[("", "The goal's usual metric"), *Metric.choices], required=False
    )
    goal_target = forms.IntegerField(
        min_value=1, required=False, help_text="How many of the metric count as success."
    )
    purpose = forms.ChoiceField(choices=Purpose.choices, initial=Purpose.MARKETING)
    topic = forms.ModelChoiceField(
        queryset=Topic.objects.none(),
        required=False,
        help_text="Marketing names the topic people opted in to.",
    )
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.none(), required=False, label="Audience (segment)"
    )
    template = forms.ModelChoiceField(queryset=Template.objects.none(), required=False)
    sender_name = forms.CharField(max_length=100)
    sender_domain = forms.ModelChoiceField(queryset=SenderDomain.objects.none(), required=False)
    from_local_part = forms.CharField(max_length=64, initial="hello", label="Sender address (before the @)")
    encryption_policy = forms.ChoiceField(
        choices=EncryptionPolicy.choices, initial=EncryptionPolicy.TLS_ELSE_PORTAL
    )
    window_start = forms.TimeField(
        required=False, label="Send only after (local time)", widget=forms.TimeInput(attrs={"type": "time"})
    )
    window_end = forms.TimeField(
        required=False, label="…and before", widget=forms.TimeInput(attrs={"type": "time"})
    )
    throttle_per_hour = forms.IntegerField(min_value=1, required=False, label="At most messages per hour")
    frequency_cap_count = forms.IntegerField(
        min_value=1,
        required=False,
        label="Frequency cap: at most",
        help_text="campaign messages per contact…",
    )
    frequency_cap_days = forms.IntegerField(min_value=1, max_value=365, initial=7, label="…in this many days")
    track_engagement = forms.BooleanField(required=False, initial=True, label="Count opens and clicks")
    ab_enabled = forms.BooleanField(required=False, label="A/B test")
    ab_dimension = forms.ChoiceField(choices=Campaign.AbDimension.choices, required=False, label="Test the")
    ab_test_percent = forms.IntegerField(
        min_value=2, max_value=100, initial=20, required=False, label="Test share (percent of the audience)"
    )
    ab_winner_metric = forms.ChoiceField(
        choices=Metric.choices, initial=Metric.OPENS, required=False, label="Winner by"
    )
    ab_wait_hours = forms.IntegerField(
        min_value=0, max_value=168, initial=4, required=False, label="Pick the winner after (hours)"
    )
    variant_a_subject = forms.CharField(max_length=300, required=False, label="Variant A subject")
    variant_b_subject = forms.CharField(max_length=300, required=False, label="Variant B subject")
    variant_c_subject = forms.CharField(max_length=300, required=False, label="Variant C subject")
    variant_d_subject = forms.CharField(max_length=300, required=False, label="Variant D subject")
    variant_a_template = forms.ModelChoiceField(
        queryset=Template.objects.none(), required=False, label="Variant A template"
    )
    variant_b_template = forms.ModelChoiceField(
        queryset=Template.objects.none(), required=False, label="Variant B template"
    )
    variant_c_template = forms.ModelChoiceField(
        queryset=Template.objects.none(), required=False, label="Variant C template"
    )
    variant_d_template = forms.ModelChoiceField(
        queryset=Template.objects.none(), required=False, label="Variant D template"
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["topic"].queryset = Topic.objects.for_tenant(tenant)
        self.fields["segment"].queryset = Segment.objects.for_tenant(tenant).order_by("name")
        templates = template_list(tenant=tenant).filter(kind=Template.Kind.MARKETING)  # archived left out
        self.fields["template"].queryset = templates
        for key in "abcd":
            self.fields[f"variant_{key}_template"].queryset = templates
        self.fields["sender_domain"].queryset = SenderDomain.objects.for_tenant(tenant)


class ScheduleForm(forms.Form):
    when = forms.ChoiceField(
        choices=[("now", "As soon as possible"), ("later", "At a date and time")],
        widget=forms.RadioSelect,
        initial="now",
        label="Send",
    )
    send_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Date")
    send_time = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}), label="Time")
    timezone_mode = forms.ChoiceField(
        choices=Campaign.TimezoneMode.choices, initial=Campaign.TimezoneMode.TENANT, label="In"
    )
    confirm_empty = forms.BooleanField(
        required=False, label="Schedule anyway: I understand this campaign would send no messages now"
    )

    def __init__(self, *args, confirm_needed: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not confirm_needed:  # shown only when the campaign would reach nobody
            del self.fields["confirm_empty"]


class CommentForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


def campaign_input(data: dict):
    """The service's input from the cleaned form (variants only when an A/B test is on)."""
    from .services.campaigns import CampaignInput, VariantInput

    variants = []
    if data.get("ab_enabled"):
        for key in "abcd":
            subject, template = data.get(f"variant_{key}_subject") or "", data.get(f"variant_{key}_template")
            if subject.strip() or template is not None:
                variants.append(VariantInput(key.upper(), subject, template.pk if template else None))
    wait_hours = data.get("ab_wait_hours")
    return CampaignInput(
        name=data["name"],
        goal=data["goal"],
        primary_metric=data.get("primary_metric") or "",
        goal_target=data.get("goal_target"),
        purpose=data["purpose"],
        topic_id=data["topic"].pk if data.get("topic") else None,
        segment_id=data["segment"].pk if data.get("segment") else None,
        template_id=data["template"].pk if data.get("template") else None,
        sender_name=data["sender_name"],
        sender_domain_id=data["sender_domain"].pk if data.get("sender_domain") else None,
        from_local_part=data["from_local_part"],
        encryption_policy=data["encryption_policy"],
        window_start=data.get("window_start"),
        window_end=data.get("window_end"),
        throttle_per_hour=data.get("throttle_per_hour"),
        frequency_cap_count=data.get("frequency_cap_count"),
        frequency_cap_days=data.get("frequency_cap_days") or 7,
        track_engagement=bool(data.get("track_engagement")),
        ab_enabled=bool(data.get("ab_enabled")),
        ab_dimension=data.get("ab_dimension") or Campaign.AbDimension.SUBJECT,
        ab_test_percent=data.get("ab_test_percent") or 20,
        ab_winner_metric=data.get("ab_winner_metric") or Metric.OPENS,
        ab_wait_hours=wait_hours if wait_hours is not None else 4,
        variants=variants,
    )


def campaign_initial(campaign: Campaign, variants) -> dict:
    initial = {
        name: getattr(campaign, name)
        for name in (
            "name",
            "goal",
            "primary_metric",
            "goal_target",
            "purpose",
            "topic",
            "segment",
            "template",
            "sender_name",
            "sender_domain",
            "from_local_part",
            "encryption_policy",
            "window_start",
            "window_end",
            "throttle_per_hour",
            "frequency_cap_count",
            "frequency_cap_days",
            "track_engagement",
            "ab_enabled",
            "ab_dimension",
            "ab_test_percent",
            "ab_winner_metric",
            "ab_wait_hours",
        )
    }
    for variant in variants:
        initial[f"variant_{variant.key.lower()}_subject"] = variant.subject
        initial[f"variant_{variant.key.lower()}_template"] = variant.template
    return initial

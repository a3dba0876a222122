"""Forms parse and shape input only; every rule lives in a service."""

from __future__ import annotations

import datetime
import json
from typing import Any

from django import forms

from .api_keys import SCOPES
from .roles import Role
from .smart import SMART_SCOPE_CHOICES


class SignInForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The 6-digit code from your authenticator app, or one of your backup codes.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autofocus": True,
                "autocapitalize": "off",
                "spellcheck": "false",
            }
        ),
    )


class EnrolmentCodeForm(CodeForm):
    code = forms.CharField(
        label="Code from your app",
        max_length=16,
        help_text="Enter the 6-digit code your app shows for HealthMail.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
            }
        ),
    )


class InvitationPasswordForm(forms.Form):
    password = forms.CharField(
        label="New password",
        strip=False,
        help_text="At least 12 characters; not a common password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    confirm = forms.CharField(
        label="Repeat the password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password") and data.get("password") != data.get("confirm"):
            self.add_error("confirm", "The two passwords differ.")
        return data


class InviteForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(choices=Role.choices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        help_text="Recorded in the audit trail, e.g. a ticket number. No patient data.",
        widget=forms.TextInput(),
    )


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Which system uses it, e.g. “Epic interface”.",
        widget=forms.TextInput(),
    )
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope} — {description}") for scope, description in SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        help_text="Give the key only what the integration needs.",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        help_text="Optional. The key stops working at the start of this day (UTC).",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def expires_at(self) -> datetime.datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


class SmartClientForm(forms.Form):
    """Registering a SMART backend client: its public keys inline or by URL, and the scopes its
    tokens may carry (only those a SMART scope can ask for)."""

    name = forms.CharField(max_length=100, help_text="Which system it is, e.g. “Epic production”.")
    jwks_url = forms.URLField(
        label="JWK Set URL",
        required=False,
        max_length=2000,
        assume_scheme="https",
        help_text="Where the system publishes its public keys (https). Preferred: it can rotate them.",
    )
    jwks = forms.CharField(
        label="JWK Set (inline)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
        help_text='Or paste the public JWK Set: {"keys": [...]}. Never a private key.',
    )
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope} — {SCOPES[scope]}") for scope in SMART_SCOPE_CHOICES],
        widget=forms.CheckboxSelectMultiple,
        help_text="The most its tokens may carry; each token carries only what it asks for.",
    )

    def clean_jwks(self) -> dict[str, Any] | None:
        text = self.cleaned_data["jwks"].strip()
        if not text:
            return None
        try:
            jwks: dict[str, Any] = json.loads(text)
        except ValueError:
            raise forms.ValidationError(
                "This is not JSON: paste the JWK Set as the system gives it."
            ) from None
        return jwks

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if bool(cleaned.get("jwks_url")) == (cleaned.get("jwks") is not None) and not self.errors:
            raise forms.ValidationError("Give the JWK Set URL or the JWK Set itself (one of them).")
        return cleaned

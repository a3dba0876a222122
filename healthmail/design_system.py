"""The design system's component gallery (/ui/): every component of healthmail/static/healthmail/app.css
on one staff page, so the browser tests check each of them with axe and docs/ui.md can point at it.

Any signed-in, verified member sees it: it shows no tenant data. The form on it is unbound until
submitted (GET with ?invalid=1), then shows how errors look, tied to their fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render

if TYPE_CHECKING:
    from healthmail.web.middleware import ScopedRequest

# The colour tokens the gallery shows, with the contrast each reaches on white (docs/ui.md).
COLOURS = [
    ("--fg", "Text", "16.6:1"),
    ("--muted", "Secondary text", "6.4:1"),
    ("--accent", "Links, primary buttons", "6.7:1"),
    ("--danger", "Errors, destructive actions", "6.6:1"),
    ("--ok", "Success", "7.4:1"),
    ("--warn", "Warnings", "7.1:1"),
    ("--control-border", "Control borders", "4.6:1"),
    ("--focus", "Focus ring", "10.0:1"),
]


class GalleryForm(forms.Form):
    name = forms.CharField(label="Campaign name", max_length=80, help_text="Shown to staff only.")
    purpose = forms.ChoiceField(
        label="Purpose", choices=[("", "Choose…"), ("treatment", "Treatment"), ("marketing", "Marketing")]
    )
    topics = forms.MultipleChoiceField(
        label="Topics",
        choices=[("news", "Newsletter"), ("events", "Events")],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    notes = forms.CharField(label="Notes", widget=forms.Textarea(attrs={"rows": 3}), required=False)
    confirm = forms.BooleanField(label="I checked the audience")


def gallery(request: ScopedRequest) -> HttpResponse:
    if request.role is None:  # signed in, but no membership and not a platform admin
        raise PermissionDenied
    form = GalleryForm(request.GET) if request.GET.get("invalid") else GalleryForm()
    if form.is_bound:
        form.is_valid()
    return render(request, "ui/gallery.html", {"form": form, "colours": COLOURS})

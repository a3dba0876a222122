"""Two tiny helpers for grouping form fields in fieldsets (presentation only)."""

from django import template

register = template.Library()


@register.filter
def split(value: str) -> list[str]:
    return value.split()


@register.filter
def field(form, name: str):
    return form[name]

"""`{{ code|label:"kind" }}`: a code as a person reads it (healthmail/labels.py)."""

from django import template

from healthmail import labels

register = template.Library()


@register.filter(name="label")
def label(code: object, kind: str) -> str:
    return labels.label(kind, code)

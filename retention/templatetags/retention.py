"""`{% legal_hold_badge contact_id %}`: the hold badge shown on records under a legal hold."""

from django import template

from retention.holds import holds_for_contact

register = template.Library()


@register.inclusion_tag("retention/_holds_badge.html", takes_context=True)
def legal_hold_badge(context, contact_id):
    request = context.get("request")
    tenant = getattr(request, "tenant", None)
    holds = holds_for_contact(tenant=tenant, contact_id=contact_id) if tenant and contact_id else []
    return {"legal_holds": holds, "can": context.get("can")}

"""The contact page's journey history (templates/contacts/contact_detail.html), contributed by the
journeys app so the contacts app does not import a higher layer."""

from __future__ import annotations

from django import template

from audit.break_glass import break_glass_active
from contacts.selectors import contact_get
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of

from .. import selectors

register = template.Library()


@register.inclusion_tag("journeys/_contact_history.html", takes_context=True)
def journey_history(context, contact_id) -> dict:
    request = context["request"]

    contact = contact_get(tenant=request.tenant, contact_id=contact_id)
    unmasked = role_can(request.role, "contacts.view_phi") or bool(context.get("unmasked_reason"))
    if not unmasked:
        unmasked = (
            break_glass_active(
                user=request.user,
                tenant=request.tenant,
                target_type="contacts.contact",
                target_id=str(contact.pk),
            )
            is not None
        )
    history = selectors.contact_history_read(
        actor=actor_of(request), tenant=request.tenant, contact=contact, unmasked=unmasked
    )
    return {"history": history, "unmasked": unmasked}

"""A copy of the signed authorization for the individual (45 CFR 164.508(c)(4)).

The signing page offers it for download; it is also sent through the secure portal. Consent sits
below delivery, so delivery registers the sender here (delivery.authorization_copies) and consent
never imports it. Each copy given is an AuthorizationEvent (copy_delivered) and an audit event.
"""

from __future__ import annotations

from collections.abc import Callable

from django.template.loader import render_to_string

from audit import services as audit
from audit.phi import phi_access
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import services
from .models import Authorization, AuthorizationEvent, Source

# (tenant, authorization, subject, text) -> a reference of what was sent (e.g. the message id), or
# None when the channel could not send (no address, no verified sender domain): nothing is recorded.
CopySender = Callable[[Tenant, Authorization, str, str], str | None]
_senders: list[CopySender] = []

COPY_SUBJECT = "Your copy of the permission you signed"  # never PHI: the portal holds the document


def copy_sender_register(sender: CopySender) -> None:
    """Called once by the app that can reach the individual (delivery's portal path)."""
    if sender not in _senders:
        _senders.append(sender)


def authorization_copy_text(*, tenant: Tenant, authorization: Authorization, actor: Actor) -> str:
    """The signed document as plain text (decrypts the signer's name: an audited PHI read)."""
    text = authorization.text
    rule = services.contact_rule(tenant=tenant, contact=authorization.contact)
    with phi_access(
        actor=actor,
        tenant=tenant,
        objects=[authorization],
        fields=["signer_name", "representative_authority"],
        purpose="copy of a signed authorization for the individual",
    ):
        return render_to_string(
            "consent/authorization_copy.txt",
            {
                "org": tenant,
                "authorization": authorization,
                "text": text,
                "notices": [n for n in rule.disclosures if n not in text.state_disclosures],
                "signer_name": authorization.signer_name,
                "representative_authority": authorization.representative_authority or "",
            },
        )


def authorization_copy_send(*, tenant: Tenant, authorization: Authorization) -> list[str]:
    """Send the copy through every registered channel; recorded once per channel used."""
    actor = Actor.system("consent.copies")
    body = authorization_copy_text(tenant=tenant, authorization=authorization, actor=actor)
    sent = []
    for sender in _senders:
        reference = sender(tenant, authorization, COPY_SUBJECT, body)
        if reference is None:
            continue  # a copy not given is not recorded as given; the download stays
        with tenant_context(tenant):
            AuthorizationEvent.objects.create(
                tenant=tenant,
                authorization=authorization,
                contact_id=authorization.contact_id,
                kind=AuthorizationEvent.Kind.COPY_DELIVERED,
                **services.Evidence(source=Source.SYSTEM, actor=actor).fields(),
            )
            audit.record(
                actor=actor,
                action="authorization.copy_send",
                target=authorization,
                tenant=tenant,
                details={"contact": str(authorization.contact_id), "sent": reference},
            )
        sent.append(reference)
    return sent

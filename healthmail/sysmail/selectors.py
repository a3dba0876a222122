"""What pages show about system mail: the delivery status of the mail that announced an object."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from healthmail.tenants.models import Tenant

from .models import SystemMail


@dataclass(frozen=True)
class Delivery:
    recipient: str  # a staff member's email; patient addresses are never shown here
    state: str
    state_label: str
    attempts: int
    last_error: str


def deliveries_for(*, tenant: Tenant, topic: str, source_ids: Iterable[object]) -> dict[str, list[Delivery]]:
    """Per source id, one entry per recipient of the mail that announced it. Call in tenant context."""
    wanted = [str(s) for s in source_ids]
    rows = (
        SystemMail.objects.filter(tenant=tenant, topic=topic, source_ids__overlap=wanted)
        .select_related("recipient_user")
        .only("source_ids", "state", "attempts", "last_error", "recipient_user__email")
        .order_by("created_at")
    )
    found: dict[str, list[Delivery]] = defaultdict(list)
    labels = dict(SystemMail.State.choices)
    for row in rows:
        recipient = row.recipient_user.email if row.recipient_user else "(former member)"
        delivery = Delivery(recipient, row.state, labels[row.state], row.attempts, row.last_error)
        for source_id in set(row.source_ids) & set(wanted):
            found[source_id].append(delivery)
    return dict(found)

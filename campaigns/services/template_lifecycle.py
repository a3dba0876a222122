"""Removing a template, and taking one for use so that a removal cannot slip in between.

A template is removed only when nothing uses it: no campaign (any status; its variants, its frozen
versions and the versions its reviewers approved count) and nothing another app registers (journeys,
through `register_template_use_counter`, so campaigns imports nothing from the apps above it).

A template never frozen is deleted. One with frozen versions is archived instead: a version is
evidence of what was sent, and the database refuses to delete one (campaigns migration 0002), so the
template stays, hidden from lists and pickers and refused to anything new; its versions stay readable.

Both sides lock the template row: the removal `FOR UPDATE`, a new use `FOR NO KEY UPDATE` (as a
freeze does). A use that committed first is counted; one that comes after finds the template gone.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
from healthmail.errors import Conflict, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Campaign, CampaignApproval, CampaignVariant, Template, TemplateVersion

# (tenant, template) -> how many objects of that kind use the template.
TemplateUseCounter = Callable[[Tenant, Template], int]
_use_counters: dict[str, TemplateUseCounter] = {}


def register_template_use_counter(kind: str, counter: TemplateUseCounter) -> None:
    """Called from an app's ready(): objects of `kind` (a plural noun, the key of the 409's counts)
    that use a template keep it from being removed."""
    _use_counters[kind] = counter


class TemplateInUse(Conflict):
    title = "Template in use"


def campaigns_using_template(tenant: Tenant, template: Template) -> int:
    uses = Q(template=template) | Q(template_version__template=template)
    with tenant_context(tenant):
        ids = set(Campaign.objects.for_tenant(tenant).filter(uses).values_list("pk", flat=True))
        ids |= set(
            CampaignVariant.objects.for_tenant(tenant).filter(uses).values_list("campaign_id", flat=True)
        )
        ids |= set(
            CampaignApproval.objects.for_tenant(tenant)
            .filter(template_version__template=template)
            .values_list("campaign_id", flat=True)
        )
    return len(ids)


def template_uses(*, tenant: Tenant, template: Template) -> dict[str, int]:
    """{"campaigns": n, "journeys": m, …}: what keeps the template from being removed."""
    counts = {"campaigns": campaigns_using_template(tenant, template)}
    for kind, counter in sorted(_use_counters.items()):
        counts[kind] = counter(tenant, template)
    return counts


def template_for_use(*, tenant: Tenant, template_id) -> Template:
    """The template, locked against a removal until the caller's transaction ends; archived ones are
    not found (nothing new may use them)."""
    with tenant_context(tenant):
        found = (
            Template.objects.for_tenant(tenant)
            .select_for_update(of=("self",), no_key=True)
            .filter(pk=template_id, archived_at__isnull=True)
            .first()
        )
    if found is None:
        raise NotFound("No such template.", code="template_not_found")
    return found


@transaction.atomic
def template_remove(*, tenant: Tenant, actor: Actor, template: Template) -> str:
    """Delete the template, or archive it when frozen versions of it exist; "deleted" or
    "archived". Refused (409 template_in_use, with the counts) while anything uses it."""
    with tenant_context(tenant):
        locked = (
            Template.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .filter(pk=template.pk, archived_at__isnull=True)
            .first()
        )
        if locked is None:
            raise NotFound("No such template.", code="template_not_found")
        uses = template_uses(tenant=tenant, template=locked)
        if any(uses.values()):
            raise TemplateInUse(
                "The template is in use: "
                + ", ".join(f"{count} {kind}" for kind, count in uses.items() if count)
                + ". Remove it from them first.",
                code="template_in_use",
                extra=uses,
            )
        versions = TemplateVersion.objects.for_tenant(tenant).filter(template=locked).count()
        if versions:
            Template.objects.filter(pk=locked.pk).update(archived_at=timezone.now())
            audit.record(
                actor=actor,
                action="template.archived",
                target=locked,
                tenant=tenant,
                details={"versions": versions},
            )
            return "archived"
        # Recorded first: the row (and its id on the object) is gone after the delete.
        audit.record(actor=actor, action="template.deleted", target=locked, tenant=tenant)
        locked.delete()  # its languages go with it
    return "deleted"

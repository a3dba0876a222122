"""Reads for the retention pages: the dashboard, policies in force, holds, runs, exceptions."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from healthmail.sysmail.selectors import deliveries_for
from healthmail.tenants.context import tenant_context

from .models import (
    HOLD_NOTICE_TOPIC,
    ArchivedRecord,
    DisposalRun,
    EvidenceExport,
    HoldCustodian,
    LegalHold,
    RetentionException,
    RetentionPolicy,
)
from .policies import cutoff, policies_ensure_defaults, policy_in_force
from .registry import Category, all_categories

UPCOMING_DAYS = 30


@dataclass(frozen=True)
class CategoryVolume:
    category: Category
    policy: RetentionPolicy | None
    live: int
    archived: int
    due_now: int
    due_soon: int  # past the maximum within UPCOMING_DAYS


def _count(category: Category, tenant, condition: str = "", params: dict | None = None) -> int:
    total = 0
    with connection.cursor() as cursor:
        for source in category.sources:
            extra = f" AND {condition}".replace("{clock}", source.clock) if condition else ""
            cursor.execute(
                f"SELECT count(*) FROM ({source.select_sql()}{extra}) q",  # noqa: S608
                {"tenant": tenant.pk, **(params or {})},
            )
            total += cursor.fetchone()[0]
    return total


def category_volumes(*, tenant) -> list[CategoryVolume]:
    policies_ensure_defaults(tenant=tenant)
    now = timezone.now()
    archived: dict[str, int] = {}
    volumes = []
    with tenant_context(tenant):
        for row in ArchivedRecord.objects.filter(tenant=tenant).values_list("category").order_by():
            archived[row[0]] = archived.get(row[0], 0) + 1
        for category in all_categories():
            policy = policy_in_force(tenant=tenant, category=category.key, at=now)
            cut = cutoff(policy, now)
            due_now = due_soon = 0
            if cut is not None and category.destroyable:
                due_now = _count(category, tenant, "{clock} < %(cut)s", {"cut": cut})
                soon = cut + datetime.timedelta(days=UPCOMING_DAYS)
                due_soon = _count(
                    category, tenant, "{clock} >= %(cut)s AND {clock} < %(soon)s", {"cut": cut, "soon": soon}
                )
            volumes.append(
                CategoryVolume(
                    category,
                    policy,
                    _count(category, tenant),
                    archived.get(category.key, 0),
                    due_now,
                    due_soon,
                )
            )
    return volumes


@dataclass(frozen=True)
class Dashboard:
    volumes: list[CategoryVolume]
    active_holds: list[LegalHold]
    overdue_reviews: list[LegalHold]
    open_runs: list[DisposalRun]
    pending_exceptions: list[RetentionException]
    pending_policies: list[RetentionPolicy]
    my_acknowledgements: list[HoldCustodian]


def dashboard(*, tenant, user) -> Dashboard:
    volumes = category_volumes(tenant=tenant)
    now = timezone.now()
    with tenant_context(tenant):
        holds = list(LegalHold.objects.filter(tenant=tenant, status=LegalHold.Status.ACTIVE))
        return Dashboard(
            volumes=volumes,
            active_holds=holds,
            overdue_reviews=[h for h in holds if h.next_review_at <= now],
            open_runs=list(DisposalRun.objects.filter(tenant=tenant, status__in=DisposalRun.OPEN)),
            pending_exceptions=list(
                RetentionException.objects.filter(tenant=tenant, status=RetentionException.Status.REQUESTED)
            ),
            pending_policies=list(
                RetentionPolicy.objects.filter(tenant=tenant, status=RetentionPolicy.Status.PENDING)
            ),
            my_acknowledgements=my_acknowledgements(tenant=tenant, user=user),
        )


def my_acknowledgements(*, tenant, user) -> list[HoldCustodian]:
    """Holds naming this person as custodian that they have not acknowledged yet (the in-app notice)."""
    with tenant_context(tenant):
        return list(
            HoldCustodian.objects.filter(
                tenant=tenant, user=user, acknowledged_at__isnull=True, hold__status=LegalHold.Status.ACTIVE
            ).select_related("hold")
        )


def policies_overview(*, tenant) -> list[tuple[Category, RetentionPolicy | None, RetentionPolicy | None]]:
    """(category, version in force, version waiting for approval) for every category."""
    policies_ensure_defaults(tenant=tenant)
    with tenant_context(tenant):
        pending = {
            p.category: p
            for p in RetentionPolicy.objects.filter(tenant=tenant, status=RetentionPolicy.Status.PENDING)
        }
        return [
            (c, policy_in_force(tenant=tenant, category=c.key), pending.get(c.key)) for c in all_categories()
        ]


def hold_list(*, tenant) -> list[LegalHold]:
    with tenant_context(tenant):
        return list(LegalHold.objects.filter(tenant=tenant).select_related("created_by", "approved_by"))


def hold_get(*, tenant, hold_id) -> LegalHold | None:
    with tenant_context(tenant):
        related = ("created_by", "approved_by", "release_requested_by", "released_by")
        return LegalHold.objects.filter(tenant=tenant, pk=hold_id).select_related(*related).first()


def hold_custodians(*, tenant, hold: LegalHold) -> list[HoldCustodian]:
    """The custodians, each with `email_delivery`: the state of the latest notice mailed to them."""
    with tenant_context(tenant):
        custodians = list(HoldCustodian.objects.filter(tenant=tenant, hold=hold).select_related("user"))
        sent = deliveries_for(tenant=tenant, topic=HOLD_NOTICE_TOPIC, source_ids=[hold.pk]).get(
            str(hold.pk), []
        )
    latest = {delivery.recipient: delivery for delivery in sent}  # oldest first: the newest wins
    for custodian in custodians:
        custodian.email_delivery = latest.get(custodian.user.email)
    return custodians


def run_list(*, tenant) -> list[DisposalRun]:
    with tenant_context(tenant):
        return list(DisposalRun.objects.filter(tenant=tenant).select_related("approved_by")[:100])


def run_get(*, tenant, run_id) -> DisposalRun | None:
    with tenant_context(tenant):
        return (
            DisposalRun.objects.filter(tenant=tenant, pk=run_id)
            .select_related("approved_by", "requested_by")
            .first()
        )


def exception_list(*, tenant) -> list[RetentionException]:
    with tenant_context(tenant):
        return list(
            RetentionException.objects.filter(tenant=tenant).select_related("requested_by", "decided_by")
        )


def export_list(*, tenant) -> list[EvidenceExport]:
    with tenant_context(tenant):
        return list(EvidenceExport.objects.filter(tenant=tenant).select_related("created_by")[:100])

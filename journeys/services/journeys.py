"""Journey definitions and their life: draft → in review → approved → active ⇄ paused → archived.

An edit of a journey that has run is a new version; contacts already inside stay on the version they
entered, new entrants take the newest activated one. A version is approved by a compliance officer
who neither wrote nor submitted it (four eyes, as for campaigns). Every step is a compare-and-set on
the status and one audit event.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from campaigns.models import Campaign, Template
from campaigns.services import templates as template_services
from consent import services as consent
from consent.models import TRANSACTIONAL_PURPOSES
from delivery.models import SenderDomain, WebhookEndpoint
from healthmail.accounts.four_eyes import second_person_require
from healthmail.accounts.roles import role_can
from healthmail.actors import Actor
from healthmail.errors import Conflict, NotFound, PermissionRefused
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from segmentation.models import Segment

from .. import definition as spec
from ..models import Journey, JourneyVersion, Position
from .lint import version_problems
from .segments import segment_members_reset
from .unopened import cursor_start, is_unopened

Status = Journey.Status
VersionStatus = JourneyVersion.Status
APPROVE = "journeys.approve"
MOVE_STAY, MOVE_SAFE = "stay", "safe"
EDIT = "journeys.edit"


def _require(role: str | None, permission: str) -> None:
    if not role_can(role, permission):
        raise PermissionRefused("Your role cannot do this with journeys.", code="journey_role")


def _problem(where: str, message: str) -> spec.DefinitionInvalid:
    return spec.DefinitionInvalid(
        message, code="definition_invalid", extra={"problems": [{"where": where, "message": message}]}
    )


def _freeze_sends(tenant: Tenant, actor: Actor, definition: dict) -> bool:
    """Freeze each send step's template (what is approved is what is sent); True when any uses PHI."""
    uses_phi = bool(definition.get("uses_phi"))
    for key, step in definition["steps"].items():
        if step["type"] != "send":
            continue
        template = Template.objects.filter(
            tenant=tenant, pk=_uuid(step["template_id"]), archived_at__isnull=True
        ).first()
        if template is None:
            raise _problem(f"steps.{key}.template_id", "No such template in this organization.")
        version = template_services.template_freeze(tenant=tenant, actor=actor, template=template)
        if any(name.startswith("data.") for name in version.fields):
            raise _problem(f"steps.{key}.template_id", "Journey email cannot use API data fields.")
        step["template_version_id"] = str(version.pk)
        uses_phi = uses_phi or bool(version.phi_fields)
        if step["purpose"] not in TRANSACTIONAL_PURPOSES:
            try:
                consent.topic_by_key(tenant=tenant, key=step.get("topic", ""))
            except NotFound:
                raise _problem(
                    f"steps.{key}.topic", "Marketing email names the topic people opted in to."
                ) from None
    return uses_phi


def _freeze_segment(tenant: Tenant, definition: dict) -> bool:
    """A segment-join trigger keeps the segment's definition as it was when the version was saved
    (what is approved is who enters); True when it uses PHI."""
    entry = definition["entry"]
    if entry["kind"] != "segment":
        return False
    segment = Segment.objects.filter(tenant=tenant, pk=_uuid(entry["segment_id"])).first()
    if segment is None:
        raise _problem("entry.segment_id", "No such segment in this organization.")
    definition["entry"] = {**entry, "segment_definition": segment.definition}
    return segment.uses_phi


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _check_sender(tenant: Tenant, definition: dict) -> None:
    if not any(step["type"] == "send" for step in definition["steps"].values()):
        return
    found = SenderDomain.objects.filter(
        tenant=tenant, pk=_uuid(definition.get("sender_domain_id")), status=SenderDomain.Status.VERIFIED
    ).exists()
    if not found:
        raise _problem("sender_domain_id", "Choose a verified sender domain for the journey's email.")


def _check_references(tenant: Tenant, journey: Journey, definition: dict) -> None:
    """Webhook endpoints and jump targets are this organization's; jumps between journeys that could
    run round without a wait are refused, like such a loop inside one journey."""

    for key, step in definition["steps"].items():
        if step["type"] == "webhook":
            found = WebhookEndpoint.objects.filter(
                tenant=tenant, pk=_uuid(step["endpoint_id"]), active=True
            ).exists()
            if not found:
                raise _problem(
                    f"steps.{key}.endpoint_id", "Choose an active webhook endpoint of this organization."
                )
        if step["type"] == "jump" and "journey_id" in step:
            target = _uuid(step["journey_id"])
            if target == journey.pk:
                raise _problem(
                    f"steps.{key}.journey_id", "To start this journey again, jump to its first step."
                )
            if not Journey.objects.filter(tenant=tenant, pk=target).exclude(status=Status.ARCHIVED).exists():
                raise _problem(f"steps.{key}.journey_id", "No such journey in this organization.")
    entry = definition["entry"]
    if entry["kind"] == "consent":
        try:
            consent.topic_by_key(tenant=tenant, key=entry["topic"])
        except NotFound:
            raise _problem("entry.topic", "No such consent topic in this organization.") from None
    if entry["kind"] == "engagement" and entry["action"] == spec.NOT_OPENED:
        _check_not_opened_send(tenant, journey, definition)
    loop = jump_loop(tenant=tenant, journey_id=journey.pk, definition=definition)
    if loop:
        names = dict(Journey.objects.filter(tenant=tenant, pk__in=loop).values_list("pk", "name"))
        raise _problem(
            "steps",
            "These journeys jump into each other without a wait: "
            + " → ".join(names.get(j, str(j)) for j in loop)
            + ". Add a wait.",
        )


def _check_not_opened_send(tenant: Tenant, journey: Journey, definition: dict) -> None:
    """The send a "did not open" trigger watches is this organization's: a campaign, or a send step
    of a journey (this one's definition, or any version of another that is not archived)."""
    entry = definition["entry"]
    if "campaign_id" in entry:
        if not Campaign.objects.filter(tenant=tenant, pk=_uuid(entry["campaign_id"])).exists():
            raise _problem("entry.send", "No such campaign in this organization.")
        return
    source = _uuid(entry["journey_id"])
    if source == journey.pk:
        definitions = [definition]
    else:
        definitions = list(
            JourneyVersion.objects.filter(tenant=tenant, journey_id=source)
            .exclude(journey__status=Status.ARCHIVED)
            .values_list("definition", flat=True)
        )
    if not any(d["steps"].get(entry["step"], {}).get("type") == "send" for d in definitions):
        raise _problem("entry.send", "No such send step in a journey of this organization.")


def _instant_jumps(definition: dict) -> set[uuid.UUID]:
    """Journeys a contact entering this definition can jump to before any wait."""
    steps, seen, todo, found = definition["steps"], set(), [definition["start"]], set()
    while todo:
        key = todo.pop()
        if key in seen or key not in steps:
            continue
        seen.add(key)
        step = steps[key]
        if step["type"] in spec.WAITS:
            continue
        if step["type"] == "jump" and "journey_id" in step:
            found.add(_uuid(step["journey_id"]))
        todo += [t for t in spec.targets(step) if isinstance(t, str)]
    return found


def jump_loop(*, tenant: Tenant, journey_id: uuid.UUID, definition: dict) -> list | None:
    """A chain of journeys from `journey_id` (with `definition`) back to itself through jumps taken
    before any wait, following the other journeys' live versions; None when there is none."""
    live = {
        j.pk: j.live_version.definition
        for j in Journey.objects.filter(tenant=tenant, live_version__isnull=False)
        .exclude(status=Status.ARCHIVED)
        .select_related("live_version")
    }
    live[journey_id] = definition
    path: list = [journey_id]

    def visit(current) -> list | None:
        for target in _instant_jumps(live[current]) if current in live else ():
            if target == journey_id:
                return [*path, target]
            if target in path or target not in live:
                continue
            path.append(target)
            found = visit(target)
            if found:
                return found
            path.pop()
        return None

    return visit(journey_id)


def _version_new(tenant: Tenant, actor: Actor, journey: Journey, definition) -> JourneyVersion:
    checked = spec.definition_check(definition)
    checked["steps"] = {key: dict(step) for key, step in checked["steps"].items()}
    _check_sender(tenant, checked)
    _check_references(tenant, journey, checked)
    uses_phi = _freeze_sends(tenant, actor, checked) | _freeze_segment(tenant, checked)
    latest = JourneyVersion.objects.filter(tenant=tenant, journey=journey).order_by("-number").first()
    if latest is not None and latest.status == VersionStatus.DRAFT:
        latest.definition, latest.uses_phi = checked, uses_phi
        latest.save(update_fields=["definition", "uses_phi"])
        return latest
    return JourneyVersion.objects.create(
        tenant=tenant,
        journey=journey,
        number=(latest.number + 1) if latest else 1,
        definition=checked,
        uses_phi=uses_phi,
        created_by=actor.user,
    )


@transaction.atomic
def journey_create(*, tenant: Tenant, actor: Actor, role: str, name: str, definition) -> Journey:
    _require(role, EDIT)
    if not name.strip():
        raise _problem("name", "Give the journey a name.")
    with tenant_context(tenant):
        journey = Journey.objects.create(tenant=tenant, name=name.strip()[:120], created_by=actor.user)
        version = _version_new(tenant, actor, journey, definition)
        audit.record(
            actor=actor,
            action="journeys.create",
            target=journey,
            tenant=tenant,
            details={"version": version.number},
        )
    return journey


@transaction.atomic
def journey_edit(*, tenant: Tenant, actor: Actor, role: str, journey: Journey, definition) -> JourneyVersion:
    """A draft version is rewritten; otherwise the edit becomes the next version (a draft)."""
    _require(role, EDIT)
    with tenant_context(tenant):
        if journey.status == Status.ARCHIVED:
            raise Conflict("The journey is archived.", code="journey_state")
        version = _version_new(tenant, actor, journey, definition)
        audit.record(
            actor=actor,
            action="journeys.edit",
            target=journey,
            tenant=tenant,
            details={"version": version.number},
        )
    return version


def _version_move(version: JourneyVersion, allowed: tuple[str, ...], to: str, **changes) -> None:
    updated = JourneyVersion.objects.filter(
        pk=version.pk, tenant_id=version.tenant_id, status__in=allowed
    ).update(status=to, **changes)
    if updated != 1:
        raise Conflict("This version cannot take that step now.", code="version_state")
    version.status = to
    for name, value in changes.items():
        setattr(version, name, value)


def _lint_require(tenant: Tenant, version: JourneyVersion) -> None:
    """The campaigns' message lint for each of the version's emails: errors refuse the submission."""
    problems = version_problems(tenant=tenant, definition=version.definition, uses_phi=version.uses_phi)
    if problems:
        raise spec.DefinitionInvalid(
            f"Fix {len(problems)} compliance error(s) before submitting: "
            + "; ".join(f"{_place(p.where)}: {p.message}" for p in problems[:5]),
            code="lint_errors",
            extra={"problems": [{"where": p.where, "message": p.message} for p in problems]},
        )


def _place(where: str) -> str:
    """A problem's place in words: "Sender name", "Step welcome"."""
    if where == "sender_name":
        return "Sender name"
    return "Step " + where.split(".")[1]


@transaction.atomic
def journey_submit(*, tenant: Tenant, actor: Actor, role: str, version: JourneyVersion) -> JourneyVersion:
    _require(role, EDIT)
    with tenant_context(tenant):
        _lint_require(tenant, version)
        _version_move(
            version,
            (VersionStatus.DRAFT, VersionStatus.REJECTED),
            VersionStatus.IN_REVIEW,
            submitted_by=actor.user,
        )
        audit.record(actor=actor, action="journeys.submit", target=version, tenant=tenant)
    return version


@transaction.atomic
def journey_approve(
    *,
    tenant: Tenant,
    actor: Actor,
    role: str,
    version: JourneyVersion,
    approve: bool = True,
    comment: str = "",
) -> JourneyVersion:
    """A compliance officer's decision on a version; nobody approves a version they wrote or submitted."""
    _require(role, APPROVE)
    with tenant_context(tenant):
        second_person_require(
            tenant=tenant,
            approver=actor.user,
            authors=(version.created_by_id, version.submitted_by_id),
            permission=APPROVE,
            what="journey",
            sole_officer_allowed=False,
            code="own_journey",
        )
        if approve:
            _version_move(
                version,
                (VersionStatus.IN_REVIEW,),
                VersionStatus.APPROVED,
                approved_by=actor.user,
                approved_at=timezone.now(),
            )
        else:
            _version_move(version, (VersionStatus.IN_REVIEW,), VersionStatus.REJECTED)
        audit.record(
            actor=actor,
            action="journeys.approve" if approve else "journeys.reject",
            target=version,
            tenant=tenant,
            reason=comment[:500],
        )
    return version


def _journey_move(journey: Journey, allowed: tuple[str, ...], to: str, **changes) -> None:
    updated = Journey.objects.filter(pk=journey.pk, tenant_id=journey.tenant_id, status__in=allowed).update(
        status=to, updated_at=timezone.now(), **changes
    )
    if updated != 1:
        raise Conflict(
            f"The journey is {Status(journey.status).label.lower()}; this step is not possible now.",
            code="journey_state",
        )
    journey.status = to
    for name, value in changes.items():
        setattr(journey, name, value)


@transaction.atomic
def journey_activate(
    *,
    tenant: Tenant,
    actor: Actor,
    role: str,
    journey: Journey,
    version: JourneyVersion,
    move: str = MOVE_STAY,
) -> Journey:
    """Make an approved version live: new entrants take it. Contacts inside stay on their version
    (`move="stay"`), or (`move="safe"`) those resting at a safe step move to the new one: not yet
    started, or waiting at a wait the new version has too (same kind, same event)."""
    _require(role, EDIT)
    if move not in (MOVE_STAY, MOVE_SAFE):
        raise _problem("move", "Contacts inside either stay on their version or move at a safe step.")
    with tenant_context(tenant):
        if version.journey_id != journey.pk or version.status != VersionStatus.APPROVED:
            raise Conflict(
                "Only an approved version of this journey can be activated.", code="version_not_approved"
            )
        if jump_loop(tenant=tenant, journey_id=journey.pk, definition=version.definition):
            raise Conflict(
                "Activating this version would let contacts jump between journeys without a wait.",
                code="jump_loop",
            )
        entry = version.definition["entry"]
        before = Journey.objects.filter(tenant=tenant, pk=journey.pk).values_list(
            "live_version__definition__entry", "unopened_checked_at"
        )[0]
        _journey_move(
            journey,
            (Status.DRAFT, Status.ACTIVE, Status.PAUSED),
            Status.ACTIVE,
            live_version=version,
            entry_kind=entry["kind"],
            entry_event=spec.entry_key(entry),
        )
        moved = positions_move(tenant=tenant, journey=journey, version=version) if move == MOVE_SAFE else 0
        if entry["kind"] == "segment":
            segment_members_reset(tenant=tenant, journey=journey, entry=entry)
        if is_unopened(entry) and (before[0] != entry or before[1] is None):
            cursor_start(tenant=tenant, journey=journey, entry=entry, now=timezone.now())
        audit.record(
            actor=actor,
            action="journeys.activate",
            target=journey,
            tenant=tenant,
            details={"version": version.number, "move": move, "moved": moved},
        )
    return journey


def _safe_steps(old: dict, new: dict) -> Q:
    """Where a contact of the `old` definition may continue on the `new` one: not started yet, or
    resting at a wait the new version has under the same name, of the same kind (and event)."""
    safe = Q(step="")
    for key, step in old["steps"].items():
        twin = new["steps"].get(key)
        if not twin or step["type"] not in spec.WAITS or twin["type"] != step["type"]:
            continue
        if step["type"] == "wait":
            safe |= Q(step=key, waiting_event="")
        elif twin["event"] == step["event"]:
            safe |= Q(step=key, waiting_event=step["event"])
    return safe


def positions_move(*, tenant: Tenant, journey: Journey, version: JourneyVersion) -> int:
    """Move the journey's contacts resting at a safe step onto `version` (their times and visits kept);
    returns how many moved. A position a worker is walking is moved after that walk, if still safe."""
    moved = 0
    others = (
        Position.objects.filter(tenant=tenant, journey=journey, state=Position.State.WAITING)
        .exclude(version=version)
        .values_list("version_id", flat=True)
        .distinct()
    )
    for old in JourneyVersion.objects.filter(tenant=tenant, pk__in=list(others)):
        safe = _safe_steps(old.definition, version.definition)
        moved += Position.objects.filter(
            safe, tenant=tenant, journey=journey, version=old, state=Position.State.WAITING
        ).update(version=version, updated_at=timezone.now())
    return moved


@transaction.atomic
def journey_pause(
    *, tenant: Tenant, actor: Actor, role: str, journey: Journey, resume: bool = False
) -> Journey:
    """Paused: nobody enters and nobody moves on (due contacts wait); resumed, they move on at once."""
    _require(role, EDIT)
    with tenant_context(tenant):
        if resume:
            _journey_move(journey, (Status.PAUSED,), Status.ACTIVE)
            entry = JourneyVersion.objects.get(tenant=tenant, pk=journey.live_version_id).definition["entry"]
            if is_unopened(entry):  # emails whose days ended while paused enter nobody
                cursor_start(tenant=tenant, journey=journey, entry=entry, now=timezone.now())
        else:
            _journey_move(journey, (Status.ACTIVE,), Status.PAUSED)
        audit.record(
            actor=actor,
            action="journeys.resume" if resume else "journeys.pause",
            target=journey,
            tenant=tenant,
        )
    return journey


@transaction.atomic
def journey_archive(*, tenant: Tenant, actor: Actor, role: str, journey: Journey) -> int:
    """End the journey: every contact inside exits. Returns how many exited."""
    _require(role, EDIT)
    now = timezone.now()
    with tenant_context(tenant):
        _journey_move(journey, (Status.DRAFT, Status.ACTIVE, Status.PAUSED), Status.ARCHIVED)
        exited = Position.objects.filter(tenant=tenant, journey=journey, state=Position.State.WAITING).update(
            state=Position.State.EXITED,
            exited_at=now,
            exit_reason="archived",
            due_at=None,
            waiting_event="",
            updated_at=now,
        )
        audit.record(
            actor=actor, action="journeys.archive", target=journey, tenant=tenant, details={"exited": exited}
        )
    return exited


@transaction.atomic
def journey_rename(*, tenant: Tenant, actor: Actor, role: str, journey: Journey, name: str) -> Journey:
    """A new name (the staff pages' builder); the definition's versions are untouched."""
    _require(role, EDIT)
    if not name.strip():
        raise _problem("name", "Give the journey a name.")
    with tenant_context(tenant):
        if journey.status == Status.ARCHIVED:
            raise Conflict("The journey is archived.", code="journey_state")
        previous = journey.name
        journey.name = name.strip()[:120]
        Journey.objects.filter(pk=journey.pk, tenant=tenant).update(
            name=journey.name, updated_at=timezone.now()
        )
        audit.record(
            actor=actor,
            action="journeys.rename",
            target=journey,
            tenant=tenant,
            details={"from": previous, "to": journey.name},
        )
    return journey

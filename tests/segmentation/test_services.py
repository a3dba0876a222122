"""Saved segments: references and cycles, PHI derivation through references, masked counts,
immutable audited snapshots."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from healthmail.actors import Actor
from healthmail.disclosure import Viewer
from healthmail.errors import Conflict
from healthmail.tenants.context import tenant_context
from segmentation import services
from segmentation.dsl import DefinitionError
from segmentation.models import SegmentSnapshot, SegmentSnapshotMember

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
CA = {"field": "state", "op": "eq", "value": "CA"}
DIABETES = {"field": "condition", "op": "in", "value": ["E11.9"]}


def _ref(segment, op="in_segment"):
    return {"field": "segment", "op": op, "value": str(segment.pk)}


def _create(tenant, name, definition):
    return services.segment_create(tenant=tenant, actor=ACTOR, name=name, definition=definition)


def test_reference_inlines_the_other_segment(tenant_a, audience_a):
    california = _create(tenant_a, "California", CA)
    combined = {"all": [_ref(california), DIABETES]}
    direct = {"all": [CA, DIABETES]}
    assert services.segment_member_ids(tenant=tenant_a, definition=combined) == services.segment_member_ids(
        tenant=tenant_a, definition=direct
    )
    outside = services.segment_member_ids(tenant=tenant_a, definition=_ref(california, "not_in_segment"))
    inside = services.segment_member_ids(tenant=tenant_a, definition=_ref(california))
    assert len(inside) + len(outside) == 300
    assert not set(inside) & set(outside)


def test_cycles_are_refused_at_the_node(tenant_a):
    first = _create(tenant_a, "First", CA)
    second = _create(tenant_a, "Second", {"any": [_ref(first)]})
    with pytest.raises(DefinitionError) as caught:
        services.segment_update(
            tenant=tenant_a, actor=ACTOR, segment=first, definition={"all": [_ref(second)]}
        )
    assert caught.value.errors[0][0] == "/all/0/value"
    assert "cycle" in caught.value.errors[0][1]
    with pytest.raises(DefinitionError, match="cycle"):
        services.segment_update(tenant=tenant_a, actor=ACTOR, segment=first, definition=_ref(first))


def test_phi_use_flows_through_references(tenant_a):
    base = _create(tenant_a, "Base", CA)
    user = _create(tenant_a, "User", {"all": [_ref(base)]})
    assert not user.uses_phi
    services.segment_update(tenant=tenant_a, actor=ACTOR, segment=base, definition={"all": [CA, DIABETES]})
    with tenant_context(tenant_a):
        user.refresh_from_db()
    assert base.uses_phi
    assert user.uses_phi


def test_foreign_segment_cannot_be_referenced(tenant_a, tenant_b):
    foreign = _create(tenant_b, "Theirs", CA)
    with pytest.raises(DefinitionError, match="not a segment of this organization"):
        _create(tenant_a, "Mine", _ref(foreign))


def test_names_are_unique_per_tenant(tenant_a, tenant_b):
    _create(tenant_a, "Diabetics", DIABETES)
    _create(tenant_b, "Diabetics", DIABETES)
    with pytest.raises(Conflict):
        _create(tenant_a, "Diabetics", CA)


def test_counts_are_masked_below_eleven(tenant_a, audience_a):
    tiny = {"all": [CA, {"field": "age", "op": "between", "value": [40, 41]}]}
    result = services.segment_count(viewer=Viewer.trusted(), tenant=tenant_a, definition=tiny)
    assert result.count is None
    assert result.display == "fewer than 11"
    everyone = services.segment_count(viewer=Viewer.trusted(), tenant=tenant_a, definition={"all": []})
    assert everyone.count == 300
    assert everyone.display == "300"
    for cells in everyone.breakdown.values():
        assert {c.display for c in cells if c.count is None} <= {"fewer than 11"}
        assert all(c.count is None or c.count >= 11 for c in cells)
    states = {c.key: c.count for c in everyone.breakdown["state"]}
    assert states["CA"]
    assert states["CA"] > 11


def test_count_remembers_on_the_segment(tenant_a, audience_a):
    segment = _create(tenant_a, "Everyone", {"all": []})
    services.segment_count(
        viewer=Viewer.trusted(), tenant=tenant_a, definition=segment.definition, segment=segment
    )
    with tenant_context(tenant_a):
        segment.refresh_from_db()
    assert segment.last_count == 300
    assert segment.last_counted_at is not None


def test_slow_counts_stop_at_the_statement_timeout(tenant_a, audience_a, settings):
    settings.SEGMENT_STATEMENT_TIMEOUT_MS = 1

    def count_repeatedly():
        # pg_sleep cannot be injected through a definition; a 1 ms budget stops a real count soon.
        for _ in range(50):
            services.segment_count(
                viewer=Viewer.trusted(), tenant=tenant_a, definition={"any": [CA, DIABETES] * 40}
            )

    with pytest.raises(services.SegmentTooSlow):
        count_repeatedly()
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] != "1ms"  # restored after the count


def test_snapshot_freezes_members_and_is_audited(tenant_a, audience_a):
    segment = _create(tenant_a, "Diabetes", DIABETES)
    snapshot = services.segment_snapshot_take(
        tenant=tenant_a, actor=ACTOR, segment=segment, purpose="campaign x"
    )
    expected = services.segment_member_ids(tenant=tenant_a, definition=DIABETES)
    with tenant_context(tenant_a):
        members = sorted(
            SegmentSnapshotMember.objects.filter(snapshot=snapshot).values_list("contact_id", flat=True)
        )
        event = AuditEvent.objects.get(action="segment.snapshot", target_id=str(snapshot.pk))
    assert members == expected
    assert snapshot.member_count == len(expected) > 0
    assert snapshot.uses_phi
    assert event.details["members"] == len(expected)
    assert "ids" not in event.details

    services.segment_update(tenant=tenant_a, actor=ACTOR, segment=segment, definition=CA)
    with tenant_context(tenant_a):
        assert SegmentSnapshot.objects.get(pk=snapshot.pk).definition == DIABETES
        for statement in (
            lambda: SegmentSnapshot.objects.filter(pk=snapshot.pk).update(member_count=1),
            lambda: SegmentSnapshotMember.objects.filter(snapshot=snapshot).delete(),
            lambda: SegmentSnapshotMember.objects.filter(snapshot=snapshot).update(contact_id=segment.pk),
        ):
            with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
                statement()

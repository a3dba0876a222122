"""`manage.py reindex_conditions`: contacts written before conditions carried their ICD-10-CM
category tokens (exact codes only) are found by category after the run, and a second run changes
nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from contacts import icd10, reindex
from contacts import services as contacts
from contacts.models import Contact
from contacts.normalize import ContactInput
from healthmail.actors import Actor
from healthmail.crypto import access
from healthmail.crypto.blind import token
from healthmail.tenants.context import tenant_context
from segmentation import services as segments

pytestmark = pytest.mark.django_db

CODES = {"a": ["E11.9"], "b": ["E11.65", "I10"], "c": ["I10"], "d": ["E119"]}


def _write_the_old_way(tenant, monkeypatch, codes) -> dict[str, object]:
    """The upsert as it was before the hierarchy: a condition got the token of its code only."""
    with monkeypatch.context() as patch:
        patch.setattr(icd10, "condition_with_ancestors", lambda code: (code,))
        results = contacts.contact_upsert_many(
            tenant=tenant,
            actor=Actor.system("tests"),
            inputs=[
                ContactInput(
                    email=f"{name}@example.org",
                    clinical={"conditions": value, "medications": ["Metformin"]},
                    demographics={"gender": "female"},
                )
                for name, value in codes.items()
            ],
            source="tests",
        )
    return {name: result.contact_id for name, result in zip(codes, results, strict=True)}


def _members(tenant, *codes) -> set:
    definition = {"field": "condition", "op": "in", "value": list(codes)}
    return set(segments.segment_member_ids(tenant=tenant, definition=definition))


def _events(tenant) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action="contacts.reindex_tokens").order_by("id"))


def test_old_contacts_are_found_by_category_after_the_run(tenant_a, tenant_b, monkeypatch):
    ids = _write_the_old_way(tenant_a, monkeypatch, CODES)
    other = _write_the_old_way(tenant_b, monkeypatch, {"x": ["E11.9"]})
    assert _members(tenant_a, "E11") == set(), "exact-only tokens: the category finds nobody"
    assert _members(tenant_a, "E11.9") == {ids["a"]}  # E119 was stored under its undotted form
    with tenant_context(tenant_a):
        before = {c.pk: (c.demographic_tokens, c.updated_at) for c in Contact.objects.all()}

    out = io.StringIO()
    call_command("reindex_conditions", "--tenant", "clinic-a", "--batch", "3", stdout=out)
    output = out.getvalue()
    assert "3/4 contacts" in output
    assert "4/4 contacts" in output
    assert "3 of 4 contacts changed" in output  # c (I10 has no category above it) was already right

    assert _members(tenant_a, "E11") == {ids["a"], ids["b"], ids["d"]}
    assert _members(tenant_a, "E11.6") == {ids["b"]}
    assert _members(tenant_a, "E11.9") == {ids["a"], ids["d"]}
    assert _members(tenant_a, "I10") == {ids["b"], ids["c"]}
    with tenant_context(tenant_a):
        after = {c.pk: c for c in Contact.objects.all()}
    assert token(tenant_a, "medication", "Metformin") in after[ids["a"]].clinical_tokens
    assert all(after[pk].demographic_tokens == tokens for pk, (tokens, _) in before.items())
    assert after[ids["c"]].updated_at == before[ids["c"]][1], "an unchanged row is not written"
    # Another tenant is left as it was until its own run.
    assert _members(tenant_b, "E11") == set()
    assert _events(tenant_b) == []

    (event,) = _events(tenant_a)
    assert (event.actor_type, event.outcome) == ("system", "success")
    assert {name: event.details[name] for name in ("total", "scanned", "changed")} == {
        "total": 4,
        "scanned": 4,
        "changed": 3,
    }

    out = io.StringIO()
    call_command("reindex_conditions", "--tenant", "clinic-a", stdout=out)
    assert "0 of 4 contacts changed" in out.getvalue()
    assert _events(tenant_a)[-1].details["changed"] == 0

    call_command("reindex_conditions", stdout=io.StringIO())  # every tenant
    assert _members(tenant_b, "E11") == {other["x"]}


def test_deleted_contacts_are_left_alone(tenant_a, monkeypatch):
    ids = _write_the_old_way(tenant_a, monkeypatch, {"a": ["E11.9"], "gone": ["E11.9"]})
    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=ids["gone"])
    contacts.contact_delete(tenant=tenant_a, actor=Actor.system("tests"), contact=contact, reason="asked")
    result = reindex.contact_tokens_reindex(tenant=tenant_a, actor=Actor.system("tests"))
    assert (result.total, result.scanned, result.changed) == (1, 1, 1)


def test_only_the_segmentation_columns_are_decrypted(tenant_a, monkeypatch):
    """Run as if a person were being served: reading an identifier would raise."""
    ids = _write_the_old_way(tenant_a, monkeypatch, {"a": ["E11.9"]})
    with access.guarded():
        result = reindex.contact_tokens_reindex(tenant=tenant_a, actor=Actor.system("tests"))
    assert result.changed == 1
    assert _members(tenant_a, "E11") == {ids["a"]}


def test_a_bad_batch_size_or_tenant_is_refused(tenant_a):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("reindex_conditions", "--batch", "0")
    with pytest.raises(CommandError):
        call_command("reindex_conditions", "--tenant", "nobody")

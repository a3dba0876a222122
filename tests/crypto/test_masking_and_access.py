"""Masking rules and the PHI access gate (every PHI read by a person is audited)."""

import datetime

import pytest

from audit.models import AuditEvent
from audit.phi import phi_access
from healthmail.actors import Actor
from healthmail.crypto import access
from healthmail.crypto.fields import PhiClass
from healthmail.crypto.masking import HIDDEN, age_band, mask
from healthmail.tenants.context import tenant_context
from tests.testapp.models import SecretNote


@pytest.mark.parametrize(
    ("value", "kind", "phi_class", "expected"),
    [
        ("Jane Doe", "name", PhiClass.IDENTIFIER, "J*** D***"),
        ("jane.doe@example.org", "email", PhiClass.IDENTIFIER, "j***@example.org"),
        ("+1 (555) 010-0199", "phone", PhiClass.IDENTIFIER, "***-***-0199"),
        ("E11.9", "condition", PhiClass.CLINICAL, HIDDEN),
        ("metformin", "name", PhiClass.CLINICAL, HIDDEN),
        ("123 Main St", "address", PhiClass.IDENTIFIER, HIDDEN),
        ("", "email", PhiClass.IDENTIFIER, ""),
        ("not-an-email", "email", PhiClass.IDENTIFIER, HIDDEN),
    ],
)
def test_mask(value, kind, phi_class, expected):
    assert mask(value, kind, phi_class) == expected


@pytest.mark.parametrize(
    ("born", "band"),
    [
        ("2010-06-01", "under 18"),
        ("1990-01-01", "30-44"),
        ("1960-01-01", "65-89"),
        ("1930-01-01", "90 or older"),
    ],
)
def test_birth_dates_become_age_bands(born, band):
    today = datetime.date(2026, 11, 23)
    assert age_band(datetime.date.fromisoformat(born), today=today) == band


@pytest.mark.django_db
def test_guarded_read_without_recorded_access_is_refused(tenant_a):
    with tenant_context(tenant_a):
        note = SecretNote.objects.create(tenant=tenant_a, body="Synthetic Patient Zed")
        fresh = SecretNote.objects.get(pk=note.pk)
        with access.guarded(), pytest.raises(access.PhiAccessNotRecorded):
            _ = fresh.body


@pytest.mark.django_db
def test_recorded_access_allows_exactly_the_named_fields_and_objects(tenant_a):
    with tenant_context(tenant_a):
        note = SecretNote.objects.create(tenant=tenant_a, body="Synthetic Patient Zed", clinical=["E11"])
        other = SecretNote.objects.create(tenant=tenant_a, body="Synthetic Patient Yan")
        fresh, other = SecretNote.objects.get(pk=note.pk), SecretNote.objects.get(pk=other.pk)
        with (
            access.guarded(),
            phi_access(
                actor=Actor("user", "u1"),
                tenant=tenant_a,
                objects=[fresh],
                fields=["body"],
                purpose="support request",
            ),
        ):
            assert fresh.body == "Synthetic Patient Zed"
            with pytest.raises(access.PhiAccessNotRecorded):
                _ = fresh.clinical
            with pytest.raises(access.PhiAccessNotRecorded):
                _ = other.body
        event = AuditEvent.objects.filter(tenant=tenant_a, action="phi.read").get()
    assert event.details == {
        "fields": ["body"],
        "purpose": "support request",
        "count": 1,
        "ids": [str(note.pk)],
    }
    assert event.target_id == str(note.pk)
    assert "Synthetic" not in str(event.details) + event.reason


def test_access_needs_a_purpose():
    with (
        pytest.raises(ValueError, match="purpose"),
        phi_access(actor=Actor.system("x"), tenant=None, objects=[], fields=[], purpose=" "),
    ):
        pass

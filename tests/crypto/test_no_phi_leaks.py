"""PHI never reaches logs or audit rows (RELIABILITY C1, small scale): run the PHI paths with every
logger at DEBUG, then grep everything captured, and every audit row, for the synthetic values."""

import json
import logging

import pytest
from django.db import connection

from audit import chain
from audit.exports import audit_export
from audit.models import AuditEvent
from audit.phi import phi_access
from audit.selectors import EventFilter
from healthmail.actors import Actor
from healthmail.crypto import blind
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.objects import content_open, content_seal, object_key_create, shred
from healthmail.crypto.rotation import rotate_data_key
from healthmail.tenants.context import tenant_context
from tests.testapp.models import SecretNote

pytestmark = pytest.mark.django_db
CANARIES = ["Zebulon Quackenbush", "zebulon.q@canary.example", "555-013-7788", "F32.A-canary"]


def test_phi_paths_leave_no_phi_in_logs_or_audit_rows(tenant_a, caplog, settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django.db.backends").setLevel(logging.DEBUG)
    actor = Actor("user", "u-1")
    with tenant_context(tenant_a):
        note = SecretNote.objects.create(
            tenant=tenant_a, body=" / ".join(CANARIES[:3]), clinical=[CANARIES[3]]
        )
        fresh = SecretNote.objects.get(pk=note.pk)
        with phi_access(
            actor=actor, tenant=tenant_a, objects=[fresh], fields=["body", "clinical"], purpose="leak test"
        ):
            assert CANARIES[0] in fresh.body
        blind.blind_index(tenant_a, "email", CANARIES[1])
        blind.token(tenant_a, "condition", CANARIES[3])
        key = object_key_create(tenant=tenant_a)
        sealed = content_seal(key, CANARIES[0].encode())
        shred(key, actor=actor, reason="retention")
        with pytest.raises(DecryptionError) as refused:
            content_open(key.pk, tenant_a.pk, sealed)
    rotate_data_key(tenant_a.pk, settle_seconds=0)
    chain.seal_all()
    export = audit_export(actor=actor, tenant=tenant_a, filters=EventFilter(), fmt="json")

    with tenant_context(tenant_a):
        rows = list(AuditEvent.objects.filter(tenant=tenant_a).values())
    captured = (
        caplog.text + str(refused.value) + json.dumps(rows, default=str) + export.content.decode("latin-1")
    )
    for canary in CANARIES:
        assert canary not in captured
    # and nothing readable at rest either
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT body::text, clinical::text FROM testapp_secretnote WHERE id = %s", [note.pk])
        at_rest = " ".join(cursor.fetchone())
    for canary in CANARIES:
        assert canary.encode().hex() not in at_rest

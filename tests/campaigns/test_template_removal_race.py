"""A removal and a new use of the same template at the same moment: the campaign's transaction locks
the template (FOR NO KEY UPDATE) and the removal (FOR UPDATE) waits for it, then counts the campaign
and refuses. Without the lock the removal deletes the template under the campaign being written.
Committed rows, two connections."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, transaction

from campaigns.services import campaigns as campaign_services
from campaigns.services.template_lifecycle import TemplateInUse, template_for_use, template_remove
from healthmail.accounts.roles import Role

from .conftest import campaign_input, person, segment, template


@pytest.fixture
def committed_tenant(committed_db):
    from tests.factories import BaaFactory, TenantFactory

    slug = f"removal-{uuid.uuid4().hex[:10]}"
    tenant = TenantFactory(name=slug, slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def test_a_removal_waits_for_the_campaign_taking_the_template_and_counts_it(committed_tenant):
    tenant = committed_tenant
    marketer = person(tenant, Role.MARKETER)
    saved = template(tenant, marketer.actor, name=f"Race {uuid.uuid4().hex[:6]}")
    audience = segment(tenant, name=f"Race {uuid.uuid4().hex[:6]}")
    taken, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def write_campaign():
        try:
            with transaction.atomic():
                template_for_use(tenant=tenant, template_id=saved.pk)  # as campaign_create takes it
                taken.set()
                release.wait(10)
                data = campaign_input(tenant, template_obj=saved, segment_obj=audience, domain=None)
                campaign_services.campaign_create(tenant=tenant, actor=marketer.actor, data=data)
            outcome["campaign"] = "created"
        except Exception as error:  # noqa: BLE001 - reported to the test thread
            outcome["campaign"] = repr(error)
        finally:
            connection.close()

    def remove():
        try:
            outcome["removal"] = template_remove(tenant=tenant, actor=marketer.actor, template=saved)
        except TemplateInUse as refused:
            outcome["removal"] = refused.extra
        except Exception as error:  # noqa: BLE001 - reported to the test thread
            outcome["removal"] = repr(error)
        finally:
            connection.close()

    writer = threading.Thread(target=write_campaign)
    writer.start()
    assert taken.wait(10)
    remover = threading.Thread(target=remove)
    remover.start()
    remover.join(1.5)
    waited = remover.is_alive()
    release.set()
    writer.join(20)
    remover.join(20)
    assert waited, f"the removal did not wait for the campaign's transaction: {outcome}"
    assert outcome == {"campaign": "created", "removal": {"campaigns": 1, "journeys": 0}}

"""The label registry: every code the apps define has a readable label, a code without one fails in
strict mode, and no page that shows codes lets a raw code (`no_opt_in`, `age_band`,
`state_health_data_consent_required`, a status) or a campaign's UUID reach the reader."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from campaigns.models import Campaign, Goal, Metric
from campaigns.services import launch
from campaigns.services.audience import FREQUENCY_CAP_REASON
from consent.models import Authorization, Suppression
from delivery.models import DeliveryReport, Message
from healthmail import labels
from journeys.models import Journey
from segmentation.compiler import BREAKDOWNS
from tests.campaigns.conftest import contacts, opt_in, scheduled
from tests.conftest import sign_in

ROOT = Path(__file__).resolve().parents[2]
_CODE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def _gate_codes() -> set[str]:
    """Every code the send gate answers with, read from its source (so a new code needs a label)."""
    source = (ROOT / "consent" / "gate.py").read_text()
    refused = set(re.findall(r'_refuse\(\s*"([a-z_]+)"', source))
    allowed = set(re.findall(r'_allow\(\s*ctx,\s*facts,\s*"([a-z_]+)"', source))
    standing = set(re.findall(r'code = "([a-z_]+)"', (ROOT / "consent" / "selectors.py").read_text()))
    assert refused, "the pattern no longer finds the gate's refusals"
    assert allowed, "the pattern no longer finds the gate's allowed answers"
    return refused | allowed | standing | {f"suppressed_{r}" for r in Suppression.Reason.values}


def _campaign_actions() -> set[str]:
    """Every history action the campaign services write, read from their source."""
    found: set[str] = set()
    for path in (ROOT / "campaigns" / "services").glob("*.py"):
        source = path.read_text()
        found |= set(re.findall(r'action="([a-z_]+)"', source))
        for prefix in re.findall(r'action=f"([a-z]+)_\{kind\}"', source):
            found |= {f"{prefix}_compliance", f"{prefix}_clinical"}
    assert "launch" in found, "the pattern no longer finds the history actions"
    return found


@pytest.mark.parametrize(
    ("kind", "codes"),
    [
        ("gate", _gate_codes()),
        ("exclusion", _gate_codes() | {FREQUENCY_CAP_REASON}),
        ("campaign_status", set(Campaign.Status.values)),
        ("goal", set(Goal.values)),
        ("metric", set(Metric.values)),
        ("message_state", set(Message.State.values)),
        ("bounce_class", set(DeliveryReport.Kind.values)),
        ("journey_status", set(Journey.Status.values)),
        ("authorization_status", set(Authorization.Status.values)),
        ("suppression_reason", set(Suppression.Reason.values)),
        ("breakdown", set(BREAKDOWNS)),
        ("source_type", {"campaign", "journey", "api"}),
        ("campaign_action", _campaign_actions()),
    ],
)
def test_every_code_has_a_label(kind, codes):
    missing = sorted(code for code in codes if not labels.has_label(kind, code))
    assert not missing, f"codes of {kind} without a label: {missing}"
    for code in codes:
        assert labels.label(kind, code) != code  # a label is words, not the code again


def test_the_issue_codes_read_as_words():
    assert labels.label("gate", "no_opt_in") == "Never opted in to the topic"
    assert labels.label("breakdown", "age_band") == "Age band"
    assert labels.label("gate", "state_health_data_consent_required") == (
        "State law requires consent to use health data"
    )


def test_a_code_without_a_label_fails_in_strict_mode_and_reads_as_words_otherwise(settings):
    settings.LABELS_STRICT = True
    with pytest.raises(labels.MissingLabel, match="gate:brand_new_code"):
        labels.label("gate", "brand_new_code")
    settings.LABELS_STRICT = False
    assert labels.label("gate", "brand_new_code") == "Brand new code"


def test_one_code_one_meaning():
    with pytest.raises(ValueError, match="registered twice"):
        labels.register("gate", {"no_opt_in": "Something else"})


def _visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL | re.IGNORECASE)
    page = re.sub(r"<[^>]+>", " ", page)
    return html.unescape(page)


def _raw_codes(page: str) -> set[str]:
    known = labels.all_codes()
    return {token for token in _CODE.findall(_visible_text(page)) if token in known}


def _render(template: str, context: dict) -> str:
    request = RequestFactory().get("/")
    return render_to_string(template, context, request=request)


@pytest.mark.django_db
def test_consent_report_and_segment_breakdowns_show_labels(settings, tenant_a):
    settings.LABELS_STRICT = True
    report = SimpleNamespace(
        topics=[],
        authorizations=[{"kind": "Marketing", "status": "valid", "count": "12"}],
        expiring_count="0",
        expiring_bands=[],
        marketing_standing=[
            {"code": "no_authorization", "count": "fewer than 11"},
            {"code": "state_health_data_consent_required", "count": "14"},
            {"code": "authorization_valid", "count": "40"},
        ],
        suppressions=[],
    )
    page = _render("consent/reports.html", {"report": report, "manage": False})
    assert not _raw_codes(page), _raw_codes(page)
    assert "State law requires consent to use health data" in page
    breakdown = SimpleNamespace(
        empty=False,
        display="120",
        uses_phi=False,
        exact=True,
        count=120,
        breakdown={"age_band": [SimpleNamespace(key="30-44", display="60")], "state": []},
    )
    page = _render("segmentation/_count.html", {"result": breakdown})
    assert not _raw_codes(page), _raw_codes(page)
    assert "By age band" in page


@pytest.mark.django_db
def test_pages_of_the_desk_show_no_code_and_no_campaign_uuid(settings, client, tenant_a, team, ready):
    settings.LABELS_STRICT = True
    ids = contacts(tenant_a, 14)
    opt_in(tenant_a, ids[:12])  # two are never opted in: an exclusion `no_opt_in`
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    pages = {
        "home": client.get("/"),
        "sending": client.get(reverse("sending:source_list")),
        "source": client.get(reverse("sending:source_progress", args=["campaign", str(campaign.pk)])),
        "detail": client.get(reverse("campaigns:campaign_detail", args=[campaign.pk])),
        "report": client.get(reverse("campaigns:campaign_report", args=[campaign.pk])),
        "compare": client.get(reverse("campaigns:campaign_compare")),
        "calendar": client.get(reverse("dashboard:calendar")),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        page = response.content.decode()
        assert not _raw_codes(page), (name, _raw_codes(page))
        assert str(campaign.pk) not in _visible_text(page), name
        assert not _UUID.search(_visible_text(page)), name
    assert campaign.name in pages["sending"].content.decode()


@pytest.mark.django_db
def test_a_source_that_no_longer_exists_is_said_in_words(settings, member_client):
    from healthmail.accounts.roles import Role

    client = member_client(Role.COMPLIANCE_OFFICER)
    tenant = client.membership.tenant
    gone = str(uuid.uuid4())
    names = labels.source_names(tenant=tenant, sources=[("campaign", gone), ("api", "order-7"), ("api", "")])
    assert names == {
        ("campaign", gone): "Campaign (not found)",
        ("api", "order-7"): "API message order-7",
        ("api", ""): "API message without a reference",
    }

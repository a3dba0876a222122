"""Consent evidence columns: validated per row, recorded in the consent history with the contacts."""

from __future__ import annotations

import pytest

from consent.models import ConsentEvent
from contacts.imports.mapping import MappingInvalid
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import contacts, import_file, row_errors, start, upload

pytestmark = pytest.mark.django_db

CONTENT = (
    "Email,Opt-in date,Topic,Consent source\n"
    "ada@example.org,2024-03-01,marketing_newsletters,web form\n"
    "bob@example.org,03/02/2024,research,Paper\n"
    "cy@example.org,,,\n"
    "dee@example.org,2024-02-30,research,paper\n"
    "eve@example.org,2024-03-01,no_such_topic,paper\n"
    "fay@example.org,2024-03-01,research,carrier pigeon\n"
)
MAPPING = {0: "email", 1: "consent.date", 2: "consent.topic", 3: "consent.source"}


def events(tenant) -> dict[str, tuple[str, str, str]]:
    with tenant_context(tenant):
        by_contact = {c.pk: c.email for c in contacts(tenant)}
        return {
            by_contact[e.contact_id]: (e.topic.key, e.source, e.occurred_at.date().isoformat())
            for e in ConsentEvent.objects.filter(tenant=tenant).select_related("topic")
        }


def test_consent_columns_record_evidence_and_report_bad_rows(tenant_a):
    job = import_file(tenant_a, CONTENT, mapping=MAPPING)

    assert events(tenant_a) == {
        "ada@example.org": ("marketing_newsletters", "web_form", "2024-03-01"),
        "bob@example.org": ("research", "paper", "2024-03-02"),
    }
    assert row_errors(job) == [
        (5, "Consent: date given (column 2)", "Not a date (use YYYY-MM-DD or MM/DD/YYYY)."),
        (6, "Consent: topic (column 3)", "Unknown consent topic."),
        (
            7,
            "Consent: source (column 4)",
            "Unknown consent source (use one of: web_form, paper, verbal, api, import).",
        ),
    ]
    # A row whose evidence is wrong is not imported at all (no contact without its consent).
    with tenant_context(tenant_a):
        assert sorted(c.email for c in contacts(tenant_a)) == [
            "ada@example.org",
            "bob@example.org",
            "cy@example.org",
        ]


def test_fixed_topic_and_source_for_every_row(tenant_a):
    content = "Email,Consented on\nada@example.org,2024-03-01\n"
    import_file(
        tenant_a,
        content,
        mapping={0: "email", 1: "consent.date"},
        consent_topic="research",
        consent_source="verbal",
    )
    assert events(tenant_a) == {"ada@example.org": ("research", "verbal", "2024-03-01")}


def test_dry_run_records_no_consent(tenant_a):
    import_file(tenant_a, CONTENT, mapping=MAPPING, dry_run=True)
    assert events(tenant_a) == {}


def test_a_future_consent_date_is_refused(tenant_a):
    job = import_file(
        tenant_a,
        "Email,Opt-in date\nada@example.org,2999-01-01\n",
        mapping={0: "email", 1: "consent.date"},
        consent_topic="research",
        consent_source="paper",
    )
    assert row_errors(job) == [
        (2, "Consent: date given (column 2)", "A consent date cannot be in the future.")
    ]


@pytest.mark.parametrize(
    ("mapping", "options", "message"),
    [
        ({0: "email", 2: "consent.topic"}, {"consent_source": "paper"}, "needs a column with the date"),
        ({0: "email", 1: "consent.date"}, {"consent_source": "paper"}, "Choose the consent topic"),
        ({0: "email", 1: "consent.date", 2: "consent.topic"}, {}, "Choose where consent was given"),
        (
            {0: "email", 1: "consent.date"},
            {"consent_topic": "nope", "consent_source": "paper"},
            "Unknown consent topic",
        ),
    ],
)
def test_incomplete_consent_mappings_are_refused(tenant_a, mapping, options, message):
    job = upload(tenant_a, CONTENT)
    with pytest.raises(MappingInvalid, match=message):
        start(tenant_a, job, mapping, **options)

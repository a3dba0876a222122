"""Every page and API operation that shows an aggregate goes through the disclosure policy.

The URL configuration is walked: each route is either marked `@shows_aggregates` (its counts come
from healthmail.disclosure) or listed below with the reason it shows no aggregate a viewer without
PHI access could use. A new route that is neither fails, so nobody adds a count page unnoticed.
The OpenAPI schema is read too: an operation whose answer carries a count-like integer must be
marked, whatever the list says.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

_OWN = "the caller's own records or settings, no count over contacts"
_PHI_ROLES = "only roles with PHI access (compliance, tenant admin) reach it"
_PUBLIC = "a recipient's own link: no aggregate"
_ACTION = "a form or an action (POST and redirect): shows no count"
_NAMESPACES_WITHOUT_AGGREGATES = {
    "accounts": "sign-in, members and API keys of the tenant: no count over contacts",
    "tenants": "platform administration: member counts of tenants, not contacts",
    "audit": _PHI_ROLES + " (audit.view)",
    "retention": _PHI_ROLES + " (retention.manage, legal holds): record counts of runs and holds",
    "incidents": _PHI_ROLES + " (incidents.manage): affected individuals of one incident, for notification",
    "portal": _PUBLIC,
    "consent_public": _PUBLIC,
    "tracking": "open pixel and click redirect: no page",
    "webhooks": _OWN + " (endpoints and their delivery attempts)",
    "portal_staff": "one secure message at a time (its own read and reply counts)",
    "fhir_alias": "the FHIR views again at /fhir/r4/: each as its fhir-* route below",
}
NOT_AGGREGATES = {
    "schema": "the OpenAPI document",
    "api-docs": "the API reference page",
    "ui_gallery": "the design-system gallery: sample components, no tenant data",
    "api-me": _OWN,
    "smart-token": "an access token for the caller's own signed assertion",
    "fhir-metadata": "the CapabilityStatement",
    "fhir-smart-configuration": "SMART discovery",
    "fhir-not-found": "an OperationOutcome 404",
    "fhir-patient-type": "a search by one exact identifier (0 or 1 match, audited lookup) and the upsert, "
    "which a key without PHI hears as 'accepted'",
    "fhir-patient": "one contact",
    "fhir-communication-request-type": _ACTION,
    "fhir-communication-type": "the messages of one CommunicationRequest (0 or 1)",
    "fhir-communication": "one message's status",
    "fhir-consent-type": "one patient's consents (a search by patient) and the create",
    "fhir-consent": "one consent",
    "api-contacts": "contact pages and upsert: records the key may read; a key without PHI hears 'accepted'",
    "api-contacts-bulk": "outcomes of the caller's own batch; a key without PHI is told 'accepted' per row",
    "api-contact": "one contact",
    "api-consent-event-create": _ACTION,
    "api-suppression-create": _ACTION,
    "api-webhooks": _OWN,
    "api-webhook": _OWN,
    "api-webhook-deliveries": _OWN,
    "api-webhook-ping": _ACTION,
    "api-consent-waiver-create": _ACTION,
    "consent:contact_waiver_record": _ACTION,
    "api-webhook-redeliver": _ACTION,
    "api-webhook-rotate-secret": _ACTION,
    "api-signing-keys": "the organization's public signing keys: no contact",
    "api-authorizations": _ACTION + " (records one authorization)",
    "api-authorization": "one authorization",
    "api-authorization-revoke": _ACTION,
    "api-authorization-end-event": _ACTION,
    "api-contact-authorizations": "one contact's authorizations",
    "api-contact-consent": "one contact's consent states and suppressions",
    "api-templates": "template rows: the organization's own content",
    "api-template": "one template",
    "api-template-language": "removes one language of a template: no counts",
    "api-campaigns": "campaign settings rows and the create action, no audience or report counts",
    "api-campaign": "one campaign's settings, no counts",
    "api-suppression-remove": _ACTION,
    "api-template-versions": "a template's frozen versions: the organization's own content",
    "api-template-version": "one frozen template version",
    "api-template-preview": "a template rendered for a synthetic contact",
    "api-template-version-preview": "a template version rendered for a synthetic contact",
    "api-campaign-withdraw": _ACTION + " (answers the campaign's settings, no counts)",
    "api-campaign-unschedule": _ACTION + " (answers the campaign's settings, no counts)",
    "api-campaign-cancel": _ACTION + " (answers the campaign's settings, no counts)",
    "api-campaign-submit": _ACTION + " (answers the campaign's settings, no counts)",
    "api-campaign-schedule": _ACTION + " (answers the campaign's settings, no counts)",
    "api-campaign-pause": _ACTION + " (answers the campaign's settings, no counts)",
    "api-campaign-resume": _ACTION + " (answers the campaign's settings, no counts)",
    "api-journeys": "journey definitions: names, states, triggers; no count",
    "api-journey-enrol": _ACTION + " (one contact's position)",
    "api-journey-remove": _ACTION + " (0 or 1: the caller's own contact)",
    "api-contact-journeys": "one contact's positions (audited)",
    "journeys:journey_list": "journey names, statuses and triggers; counts are on the detail page",
    "journeys:journey_new": "the builder (its dry run walks synthetic contacts, no real count)",
    "journeys:journey_edit": "the builder (its dry run walks synthetic contacts, no real count)",
    **{
        f"journeys:journey_{step}": _ACTION
        for step in ("submit", "review", "activate", "pause", "resume", "archive")
    },
    "consent:contact_authorization_record": _ACTION,
    "consent:contact_authorization_end": _ACTION,
    "contacts:contact_unmask": "one contact, unmasked for a role with the permission and a reason",
    "delivery:domain_pause_lift": _ACTION,
    "favicon.ico": "the site icon",
    "api-events": _ACTION,
    "api-messages": "message rows (one per message, no totals) and the send action",
    "api-messages-batch": "the key's own transactional messages",
    "api-message": "one message",
    "api-not-found": "the 404 answer",
    "segmentation:segment_export": "the members one by one (masked per role, audited), no count",
    "contacts:contact_export": "contacts one by one (masked per role, audited), no count",
    "segmentation:condition_lookup": "names of ICD-10-CM codes (the public code list): no contact",
    "consent:contact_consent": "one contact's consent history",
    "consent:contact_consent_record": _ACTION,
    "consent:contact_signing_link": _ACTION,
    "consent:contact_authorization_revoke": _ACTION,
    "consent:text_list": "authorization texts (documents)",
    "consent:text_create": _ACTION,
    "consent:text_detail": "one authorization text",
    "consent:suppression_list": "suppression entries, consent.manage only: " + _PHI_ROLES,
    "consent:suppression_remove": _ACTION,
    "consent:settings": "consent settings",
    "consent:topic_create": _ACTION,
    "contact_imports:job_list": "the importer's own files; a writer without PHI is told 'imported' only",
    "contact_imports:upload": _ACTION,
    "contact_imports:job_detail": "the importer's own file; a writer without PHI is told 'imported' only",
    "contact_imports:job_map": _ACTION,
    "contact_imports:error_report": "rows of the importer's own file",
    "delivery:sender_domain_list": "sender domains (DNS settings)",
    "delivery:sender_domain_detail": "one sender domain",
    "delivery:sender_domain_check": _ACTION,
    "delivery:dkim_key_rotate": _ACTION,
    "delivery:dkim_key_retire": _ACTION,
    "sending:message_search": "one message, delivery.search: " + _PHI_ROLES,
    "sending:message_evidence": "one message, delivery.view_evidence: " + _PHI_ROLES,
    "sending:domain_table": "per recipient domain evidence, delivery.view_evidence: " + _PHI_ROLES,
    "contacts:contact_list": "contact records (masked for roles without PHI access)",
    "contacts:contact_detail": "one contact",
    "contacts:custom_field_list": "field definitions",
    "contacts:custom_field_delete": _ACTION,
    "campaigns:campaign_list": "names, statuses and dates; figures are on the detail page",
    "campaigns:campaign_new": _ACTION,
    "campaigns:template_design": "the block email editor: a template's content, no figures",
    "campaigns:template_design_new": "the block email editor: a template's content, no figures",
    "campaigns:template_preview_frame": "a template rendered for a synthetic contact",
    "campaigns:approval_list": "campaigns waiting for review",
    "campaigns:campaign_edit": "the campaign form",
    **{
        f"campaigns:campaign_{step}": _ACTION
        for step in ("submit", "withdraw", "review", "schedule", "unschedule", "pause", "resume", "cancel")
    },
    **{
        f"campaigns:{name}": "templates, blocks and branding: no audience"
        for name in (
            "template_list",
            "template_new",
            "template_edit",
            "template_preview",
            "template_test_send",
            "block_list",
            "block_new",
            "block_edit",
            "branding",
        )
    },
    "healthz": "service health",
    "metrics": "Prometheus process metrics, behind a token: no count over one tenant's contacts",
    "dev_mailbox": "development only: the local SMTP sink",
    "dev_mailbox_message": "development only: the local SMTP sink",
}


def _routes(patterns=None, namespace=""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from _routes(pattern.url_patterns, inner)
        else:
            yield namespace + (pattern.name or str(pattern.pattern)), pattern.callback


def _marked(callback) -> bool:
    return bool(getattr(callback, "shows_aggregates", False)) or bool(
        getattr(getattr(callback, "cls", None), "shows_aggregates", False)
    )


def _excused(name: str) -> bool:
    return name in NOT_AGGREGATES or name.split(":")[0] in _NAMESPACES_WITHOUT_AGGREGATES


def test_every_route_is_marked_or_excused():
    unclassified = sorted(
        name for name, callback in _routes() if not _marked(callback) and not _excused(name)
    )
    assert not unclassified, (
        "routes that neither take their counts from healthmail.disclosure (@shows_aggregates) nor are "
        f"listed as showing no aggregate: {unclassified}"
    )


def test_the_list_names_only_routes_that_exist_and_are_not_marked():
    routes = dict(_routes())
    stale = sorted(name for name in NOT_AGGREGATES if name not in routes)
    assert not stale, f"NOT_AGGREGATES lists routes that no longer exist: {stale}"
    both = sorted(name for name in NOT_AGGREGATES if _marked(routes[name]))
    assert not both, f"marked routes need no excuse: {both}"


def test_known_aggregate_pages_are_marked():
    """The pages the issue named (and their API twins) are on the policy path."""
    routes = dict(_routes())
    for name in (
        "segmentation:segment_count",
        "segmentation:segment_list",
        "campaigns:campaign_detail",
        "campaigns:campaign_progress",
        "campaigns:campaign_report",
        "campaigns:campaign_report_csv",
        "journeys:journey_detail",
        "sending:source_list",
        "sending:source_progress",
        "consent:reports",
        "api-segments-count",
        "api-segment-count",
    ):
        assert _marked(routes[name]), name


COUNTISH = re.compile(
    r"(^|_)(count|counts|total|members|queued|excluded|delivered|bounced|opens|clicks|recipients)($|_)"
)


def _countish(schema: dict, components: dict, seen: frozenset = frozenset()) -> list[str]:
    """Names of count-like integer properties anywhere in a response schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [] if name in seen else _countish(components[name], components, seen | {name})
    found = []
    for key, value in (schema.get("properties") or {}).items():
        if COUNTISH.search(key) and (value.get("type") == "integer" or "additionalProperties" in value):
            found.append(key)
        found += _countish(value, components, seen)
    for nested in ("items", "additionalProperties"):
        if isinstance(schema.get(nested), dict):
            found += _countish(schema[nested], components, seen)
    for combined in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(combined, []):
            found += _countish(part, components, seen)
    return found


OWN_OUTCOMES = {("POST", "/api/v1/contacts/bulk")}  # the batch's own outcomes (see NOT_AGGREGATES)


def test_every_api_answer_with_a_count_is_marked():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    unmarked = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if (method.upper(), path) in OWN_OUTCOMES:
                continue
            counts = []
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2"):
                    for content in (response.get("content") or {}).values():
                        counts += _countish(content.get("schema", {}), components)
            if counts:
                callback = resolve(re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)).func
                if not _marked(callback):
                    unmarked.append((method.upper(), path, sorted(set(counts))))
    assert not unmarked, f"API operations answering counts outside healthmail.disclosure: {unmarked}"


def test_the_api_check_can_fail():
    """The detector finds the segment count's fields (so an unmarked twin would be caught)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    count_answer = schema["paths"]["/api/v1/segments/count"]["post"]["responses"]["200"]
    assert "count" in _countish(count_answer["content"]["application/json"]["schema"], components)

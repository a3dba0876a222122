"""A pure-Python evaluator of parsed definitions over contact facts: the reference the compiled SQL
is held to by the property tests. It reads the same plaintext columns and keyed tokens as the SQL
and decrypts nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Q

from consent.models import Channel, ConsentEvent, ConsentState, Suppression
from contacts.models import Contact
from healthmail.crypto import blind

from .dsl import Condition, Node, Parsed
from .strategies import ContactFacts, Context


def evaluate_node(node: Node, facts: ContactFacts, ctx: Context) -> bool:
    if isinstance(node, Condition):
        return node.field.strategy.test(node.op, node.value, facts, ctx)
    if node.kind == "not":
        return not evaluate_node(node.children[0], facts, ctx)
    results = (evaluate_node(child, facts, ctx) for child in node.children)
    return all(results) if node.kind == "all" else any(results)


def members(parsed: Parsed, contacts: Iterable[ContactFacts], ctx: Context) -> list:
    return sorted(facts.id for facts in contacts if evaluate_node(parsed.root, facts, ctx))


def contact_facts(*, tenant) -> list[ContactFacts]:
    """Facts for every live contact of the tenant (for tests: loads the whole list)."""

    from .engagement import engagement_source

    engagement = engagement_source().facts(tenant=tenant)

    granted: dict = defaultdict(set)
    states = ConsentState.objects.for_tenant(tenant).filter(
        channel=Channel.EMAIL, status=ConsentEvent.Kind.GRANTED
    )
    for contact_id, topic_id in states.values_list("contact_id", "topic_id"):
        granted[contact_id].add(topic_id)
    active = Suppression.objects.for_tenant(tenant).filter(removed_at__isnull=True)
    suppressed_contacts = set(active.exclude(contact=None).values_list("contact_id", flat=True))
    # Each suppression's index and next index; each contact's with their successors while an
    # index-key rotation runs (blind.candidates).
    suppressed_emails = {
        bytes(index)
        for pair in active.exclude(email_index=None).values_list("email_index", "email_index_next")
        for index in pair
        if index is not None
    }
    columns = (
        "id", "birth_year", "age_90_or_older", "zip3", "state", "gender", "language", "journey_stage",
        "is_minor", "created_at", "clinical_tokens", "demographic_tokens", "tag_tokens",
        "sensitive_categories", "email_index", "email_index_next",
    )  # fmt: skip
    rows = Contact.objects.for_tenant(tenant).filter(Q(deleted_at__isnull=True)).values(*columns)
    facts = []
    for row in rows:
        email_indexes = blind.candidates(tenant, "email", row.pop("email_index"), row.pop("email_index_next"))
        facts.append(
            ContactFacts(
                **{k: v for k, v in row.items() if not k.endswith("tokens") and k != "sensitive_categories"},
                clinical_tokens=frozenset(row["clinical_tokens"]),
                demographic_tokens=frozenset(row["demographic_tokens"]),
                tag_tokens=frozenset(row["tag_tokens"]),
                sensitive_categories=frozenset(row["sensitive_categories"]),
                granted_topics=frozenset(granted.get(row["id"], ())),
                suppressed=row["id"] in suppressed_contacts
                or any(index in suppressed_emails for index in email_indexes),
                engagement=engagement.get(row["id"], ()),
            )
        )
    return facts

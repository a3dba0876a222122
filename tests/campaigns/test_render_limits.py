"""Rendering is bounded: a template that grows text on its own is refused when saved, real merge
values are measured before each render, and the bound is sound (never below what Jinja2 produces)."""

from __future__ import annotations

import json
import time

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.models import Template
from campaigns.templating import fields, limits, render, sandbox
from campaigns.templating.sandbox import RenderError, analyze, render_string

from .conftest import contacts, template, verified_domain

FIELD_SET = fields.FieldSet(
    {f.name: f for f in (*fields.CONTACT_FIELDS, *fields.SYSTEM_FIELDS)}, allow_data=True
)
# 330 bytes that render to 4**13 characters: "replace" applied to its own output.
EXPONENTIAL = '{{ "aaaa"' + '|replace("a", "aaaa")' * 12 + " }}"


def _kind_of_large(chains: int) -> str:
    """Harmless with a short note, too large with a long one: known only when the values are."""
    return "<p>{{ data.note" + '|replace("a", "aaaaaaaaaa")' * chains + " }}</p>"


def test_exponential_template_is_refused_when_saved():
    problems = analyze(EXPONENTIAL, field_set=FIELD_SET).problems
    assert [p.code for p in problems] == ["output_too_large"]


def test_exponential_template_is_refused_before_rendering_anything():
    started = time.monotonic()
    with pytest.raises(RenderError, match="longer than"):
        render_string(EXPONENTIAL, {})
    assert time.monotonic() - started < 1


def test_the_static_bound_is_what_refuses(monkeypatch):
    """With the bound switched off, the streaming count still refuses; with both off the template
    really renders past the limit (so the tests above prove the defence, not a small template)."""
    small = '{{ "aaaa"' + '|replace("a", "aaaa")' * 9 + " }}"  # 4**10 characters
    monkeypatch.setattr(sandbox, "bound_or_none", lambda *args, **kwargs: None)
    with pytest.raises(RenderError, match="longer than"):
        render_string(small, {})
    monkeypatch.setattr(sandbox, "_stream", lambda chunks, limits: "".join(chunks))
    assert len(render_string(small, {})) == 4**10 > limits.render_limits().part_chars


def test_growth_from_real_values_is_refused_at_render_time():
    source = _kind_of_large(3)
    assert analyze(source, field_set=FIELD_SET).problems == []  # a 200-character note is fine
    plain = {"autoescape": False}  # a text part: the bound is exact for this template
    assert len(render_string(source, {"data": {"note": "a" * 200}}, **plain)) == 200_000 + 7
    with pytest.raises(RenderError, match="longer than"):
        render_string(source, {"data": {"note": "a" * 2_000}}, **plain)


def test_the_whole_message_has_a_limit(settings):
    settings.TEMPLATE_MAX_MESSAGE_CHARS = 5_000
    parts = render.Parts(subject="Hi", preheader="", html="<p>{{ data.note }}</p>")
    branding = render.Branding(sender_name="Clinic")
    footer = render.Footer(sender_identity="Clinic", postal_address="1 Main St", commercial=False)
    context = {"data": {"note": "x" * 1_000}}
    assert render.render_parts(parts, context=context, blocks={}, branding=branding, footer=footer)
    context = {"data": {"note": "x" * 4_000}}  # the HTML and the text part together pass 5,000
    with pytest.raises(RenderError, match="rendered message"):
        render.render_parts(parts, context=context, blocks={}, branding=branding, footer=footer)


# --- The bound is sound: generated templates of every admitted construct -------------------------

_TEXT = st.text(alphabet="aA<&\"'ßﬃİ x.", max_size=6)
_QUOTED = _TEXT.map(lambda t: json.dumps(t, ensure_ascii=False))
_VALUE = st.sampled_from(["contact.first_name", "data.note", "data.code"])
_LEAF = st.one_of(_QUOTED, _VALUE)
_FILTERS = st.one_of(
    st.tuples(_QUOTED, _LEAF).map(lambda a: f"replace({a[0]}, {a[1]})"),
    st.tuples(_QUOTED, _LEAF, st.integers(0, 3)).map(lambda a: f"replace({a[0]}, {a[1]}, {a[2]})"),
    st.sampled_from(["upper", "lower", "title", "capitalize", "trim", "striptags", "e", "escape"]),
    st.tuples(st.integers(1, 10), _QUOTED).map(lambda a: f"truncate({a[0]}, true, {a[1]}, 0)"),
    _LEAF.map(lambda a: f"default({a})"),
)


def _expressions():
    def extend(inner):
        return st.one_of(
            st.tuples(inner, _FILTERS).map(lambda a: f"({a[0]})|{a[1]}"),
            st.tuples(inner, inner).map(lambda a: f"{a[0]} ~ {a[1]}"),
            st.tuples(inner, inner, _VALUE).map(lambda a: f"({a[0]} if {a[2]} else {a[1]})"),
            st.tuples(inner, inner).map(lambda a: f"({a[0]} or {a[1]})"),
        )

    return st.recursive(_LEAF, extend, max_leaves=6)


_TEMPLATES = st.lists(
    st.one_of(
        _TEXT,
        _expressions().map(lambda e: "{{ " + e + " }}"),
        st.tuples(_VALUE, _expressions()).map(lambda a: "{% if " + a[0] + " %}{{ " + a[1] + " }}{% endif %}"),
    ),
    min_size=1,
    max_size=4,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=_TEMPLATES, note=_TEXT, code=_TEXT, name=_TEXT, autoescape=st.booleans())
def test_bound_is_never_below_the_rendered_length(source, note, code, name, autoescape):
    context = {"contact": {"first_name": name}, "data": {"note": note, "code": code}}
    tree, problem = sandbox.parse(source)
    assert problem is None, source
    bound = limits.output_bound(
        tree, value_length=limits.context_value_length(context), block_length=lambda key: 0, escape=autoescape
    )
    try:
        rendered = sandbox._environment((), autoescape).from_string(source).render(context)
    except AssertionError:  # Jinja2's truncate refuses a length shorter than its ending
        with pytest.raises(RenderError):
            render_string(source, context, autoescape=autoescape)
        return
    assert len(rendered) <= bound, source


# --- Preview and API answer within the limit ------------------------------------------------------


@pytest.mark.django_db
def test_api_refuses_an_exponential_inline_template_at_once(tenant_a, issue_key, api):
    verified_domain(tenant_a)
    [contact_id] = contacts(tenant_a, 1)
    client = api(issue_key(scopes=["messages:send"]))
    body = {
        "recipient": {"contact_id": str(contact_id)},
        "purpose": "treatment",
        "content": {"subject": "Your results", "html": f"<p>{EXPONENTIAL}</p>"},
    }
    started = time.monotonic()
    response = client.post("/api/v1/messages", json.dumps(body))
    assert time.monotonic() - started < 5
    assert response.status_code == 422, response.content
    assert "grow to more than" in response.content.decode()


@pytest.mark.django_db
def test_api_refuses_a_message_whose_data_makes_it_too_large(tenant_a, team, issue_key, api):
    verified_domain(tenant_a)
    [contact_id] = contacts(tenant_a, 1)
    grows = template(
        tenant_a,
        team["marketer"].actor,
        name="Grows",
        subject="Note",
        html=_kind_of_large(3),
        text="",
        kind=Template.Kind.TRANSACTIONAL,
    )
    client = api(issue_key(scopes=["messages:send"]))
    body = {
        "recipient": {"contact_id": str(contact_id)},
        "purpose": "treatment",
        "template_id": str(grows.pk),
        "data": {"note": "a" * 2_000},
    }
    response = client.post("/api/v1/messages", json.dumps(body))
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "render_failed"


# --- The worker is freed: a campaign message whose data makes it too large fails at once ---------------


@pytest.mark.django_db
def test_a_campaign_message_too_large_for_its_data_fails_fast_and_frees_the_worker(tenant_a, team, ready):
    """Saved and approved (a 200-character name is fine), then one contact's name makes the same
    template grow past the limit: the worker refuses that message at once, as `not sendable`, and
    the next one in the batch is prepared as usual."""
    from types import SimpleNamespace

    from campaigns.services import launch
    from contacts.models import Contact
    from delivery.engine.config import stream_identity
    from delivery.engine.decide import Path
    from delivery.engine.gate import GateResult
    from delivery.engine.prepare import Preparer, Work
    from delivery.models import Message
    from healthmail.tenants.context import tenant_context
    from tests.delivery.engine_support import verified_sender_domain

    from .conftest import opt_in, scheduled

    grows = template(
        tenant_a,
        team["marketer"].actor,
        name="Grows with the name",
        html="<p>{{ contact.first_name" + '|replace("a", "aaaaaaaaaa")' * 3 + " }}</p>",
    )
    domain, _key = verified_sender_domain(tenant_a, "mail.grows.test")  # a real signing key
    small, large = contacts(tenant_a, 2)
    opt_in(tenant_a, [small, large])
    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=large)
        contact.first_name = "a" * 2_000  # 2,000,000 characters once the filters ran
        contact.save(update_fields=["first_name"])
    campaign = scheduled(tenant_a, team, {**ready, "template": grows, "domain": domain})
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)

    preparer = Preparer(
        tenant=tenant_a, identity=stream_identity("marketing"), deps=SimpleNamespace(portal=None)
    )
    with tenant_context(tenant_a):
        messages = {m.contact_id: m for m in Message.objects.filter(source_id=str(campaign.pk))}
        started = time.monotonic()
        refused, settle = preparer.prepare(
            Work(messages[large], Path.DIRECT, GateResult(True)), now=timezone.now()
        )
        elapsed = time.monotonic() - started
        prepared, nothing = preparer.prepare(
            Work(messages[small], Path.DIRECT, GateResult(True)), now=timezone.now()
        )
    assert refused is None
    assert settle.state == Message.State.FAILED
    assert settle.reason.startswith("not sendable:")
    assert "longer than" in settle.reason
    assert elapsed < 1  # refused before building the text, not after
    assert nothing is None
    assert prepared is not None


@pytest.mark.django_db
def test_the_preview_answers_within_the_limit_for_an_exponential_template(member_client, tenant_a, team):
    """A template stored before the save-time check (or past it some other way) still cannot hold the
    web worker: the preview page answers at once with the reason."""
    from django.urls import reverse

    from campaigns.models import TemplateContent
    from healthmail.accounts.roles import Role
    from healthmail.tenants.context import tenant_context

    stored = template(tenant_a, team["marketer"].actor, name="Stored long ago")
    with tenant_context(tenant_a):
        TemplateContent.objects.filter(template=stored).update(html=f"<p>{EXPONENTIAL}</p>")
    client = member_client(Role.MARKETER)
    started = time.monotonic()
    response = client.get(reverse("campaigns:template_preview", args=[stored.pk]))
    assert time.monotonic() - started < 5
    assert response.status_code == 200
    assert "longer than" in response.content.decode()

"""The template sandbox: known escape payloads are refused by the static check with a position, and
the runtime sandbox refuses them too if anything were to slip past the check."""

from __future__ import annotations

import pytest

from campaigns.templating import fields
from campaigns.templating.sandbox import RenderError, analyze, parse, render_string

FIELD_SET = fields.FieldSet({f.name: f for f in (*fields.CONTACT_FIELDS, *fields.SYSTEM_FIELDS)})

# Server-side template injection payloads for Jinja2 (PayloadsAllTheThings, HackTricks, Jinja2
# sandbox CVEs 2016-10745, 2019-10906, 2024-56326, 2025-27516).
ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ contact.__class__ }}",
    "{{ contact.first_name.__class__.__base__ }}",
    "{{ config.items() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range(10**9) }}",
    "{{ request.application.__globals__ }}",
    "{{ contact['__class__'] }}",
    "{{ contact|attr('__class__') }}",
    "{{ '{0.__class__}'.format(contact) }}",
    "{{ 'a' * 1000000000 }}",
    "{{ 9**9**9 }}",
    "{% set x = contact %}{{ x }}",
    "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
    "{% macro m() %}x{% endmacro %}{{ m() }}",
    "{% import 'os' as os %}",
    "{% extends 'base' %}",
    "{% include contact.first_name %}",
    "{{ contact.first_name|map('upper')|list }}",
    "{{ contact.first_name|format('%s') }}",
    "{% filter upper %}x{% endfilter %}",
    "{% with a = 1 %}{{ a }}{% endwith %}",
    "{{ dict(a=1) }}",
    "{{ contact.first_name.upper() }}",
    "{{ [].pop() }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_static_check_refuses_escape_payloads(payload):
    result = analyze(payload, field_set=FIELD_SET)
    assert result.problems, f"not refused: {payload}"
    problem = result.problems[0]
    assert problem.code in {
        "disallowed_expression",
        "disallowed_filter",
        "unknown_merge_field",
        "unknown_block",
        "syntax_error",
    }
    assert problem.line == 1
    assert problem.column is not None


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ contact.__class__ }}",
        "{{ contact.items() }}",
        "{{ 'a' * 100 }}",
        "{{ lipsum }}",
        "{{ range(5) }}",
        "{{ contact|attr('__class__') }}",
        "{{ contact.first_name.upper() }}",
    ],
)
def test_runtime_sandbox_refuses_what_the_static_check_would(payload):
    with pytest.raises(RenderError):
        render_string(payload, {"contact": {"first_name": "A"}})


def test_merge_fields_render_escaped_in_html_and_plain_in_text():
    context = {"contact": {"first_name": "<b>A&B</b>"}}
    assert render_string("Hi {{ contact.first_name }}", context) == "Hi &lt;b&gt;A&amp;B&lt;/b&gt;"
    assert render_string("Hi {{ contact.first_name }}", context, autoescape=False) == "Hi <b>A&B</b>"


def test_allowed_constructs_pass():
    source = (
        "{% if contact.first_name %}Hi {{ contact.first_name|title }}{% else %}Hello{% endif %}, "
        "{{ contact.city|default('your town', true) ~ '!' }}"
    )
    result = analyze(source, field_set=FIELD_SET)
    assert result.problems == []
    assert result.fields == {"contact.first_name", "contact.city"}
    rendered = render_string(source, {"contact": {"first_name": "ana", "city": ""}})
    assert rendered == "Hi Ana, your town!"


def test_syntax_errors_report_line_and_column():
    _, problem = parse("Hello\n  {{ contact.first_name contact.last_name }}")
    assert problem.code == "syntax_error"
    assert (problem.line, problem.column) == (2, 25)  # the second “contact”

    _, unclosed = parse("Hi\n\n  {{ 'abc }}")
    assert unclosed.code == "syntax_error"
    assert unclosed.line == 3
    assert unclosed.column == 6

    _, tag = parse("A\nB {% iff x %}")
    assert tag.line == 2
    assert tag.column == 6
    assert "iff" in tag.message


def test_unknown_merge_field_is_named_with_its_position():
    result = analyze("Dear {{ contact.ssn }}", field_set=FIELD_SET)
    [problem] = result.problems
    assert problem.code == "unknown_merge_field"
    assert "contact.ssn" in problem.message
    assert (problem.line, problem.column) == (1, 17)


def test_blocks_are_included_and_their_fields_count():
    blocks = {"signature": "Your provider, {{ contact.provider }}"}
    result = analyze("{% include 'signature' %}", field_set=FIELD_SET, blocks=blocks)
    assert result.problems == []
    assert result.blocks == {"signature"}
    assert result.fields == {"contact.provider"}
    assert render_string("{% include 'signature' %}", {"contact": {"provider": "Dr. X"}}, blocks=blocks) == (
        "Your provider, Dr. X"
    )
    missing = analyze("{% include 'nope' %}", field_set=FIELD_SET, blocks=blocks)
    assert [p.code for p in missing.problems] == ["unknown_block"]


def test_transactional_field_sets_accept_data_fields_as_phi():
    transactional = fields.FieldSet(FIELD_SET.fields, allow_data=True)
    result = analyze("Your appointment {{ data.appointment_time }}", field_set=transactional)
    assert result.problems == []
    assert result.fields == {"data.appointment_time"}
    assert transactional.get("data.appointment_time").phi
    assert analyze("{{ data.x }}", field_set=FIELD_SET).problems[0].code == "unknown_merge_field"
    assert (
        analyze("{{ data.__class__ }}", field_set=transactional).problems[0].code == "disallowed_expression"
    )


def test_phi_classes_come_from_the_contact_fields():
    by_name = {f.name: f for f in fields.CONTACT_FIELDS}
    assert not by_name["contact.first_name"].phi  # an identifier: personal, not health information
    assert by_name["contact.first_name"].personal
    assert by_name["contact.provider"].phi  # from Contact.clinical (PhiClass.CLINICAL)
    assert by_name["contact.birth_date"].phi  # PhiClass.DATE

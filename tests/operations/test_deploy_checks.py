"""Production refuses an unsafe configuration at start-up, and `check --deploy` reports it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from healthmail.deployment import ehlo_problem, production_problems
from tests.operations.settings_inventory import ROOT

SAFE = {
    "DJANGO_SECRET_KEY": "a-long-random-key-for-this-test-only",
    "DATABASE_URL": "postgres://owner@127.0.0.1:5432/healthmail",
    "HEALTHMAIL_MASTER_KEY": "k1:" + "dGVzdC1vbmx5LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=",
    "PUBLIC_BASE_URL": "https://mail.example.org",
    "DELIVERY_EHLO_HOSTNAME": "mta1.example.org",
}


def _start_production(**overrides: str) -> subprocess.CompletedProcess:
    """Import the production settings in a fresh interpreter, as gunicorn or celery would."""
    inherited = os.environ.items()
    environment = {key: value for key, value in inherited if not key.startswith(("DJANGO_", "DELIVERY_"))}
    environment.update({**SAFE, **overrides})
    return subprocess.run(
        [sys.executable, "-c", "import healthmail.settings.production"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# RFC 5321 section 4.1.1.1: the EHLO argument is the client's fully qualified domain name.
@pytest.mark.parametrize("name", ["mta1.example.org", "mail.clinic-a.health", "out-1.mail.example.co.uk."])
def test_fully_qualified_names_are_accepted_for_ehlo(name):
    assert ehlo_problem(name) == ""


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("localhost", "localhost"),
        ("LOCALHOST", "localhost"),
        ("localhost.localdomain", "localhost"),
        ("worker.local", "localhost"),
        ("mta1", "fully qualified"),
        ("", "empty"),
        ("192.0.2.10", "IP address"),
        ("[192.0.2.10]", "IP address"),
        ("mta_1.example.org", "valid host name"),
        ("-mta.example.org", "valid host name"),
        ("mta.example.123", "numeric"),
    ],
)
def test_names_receivers_distrust_are_refused_for_ehlo(name, reason):
    assert reason in ehlo_problem(name)


def test_a_safe_production_configuration_starts():
    started = _start_production()
    assert started.returncode == 0, started.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DELIVERY_EHLO_HOSTNAME": "localhost"}, "DELIVERY_EHLO_HOSTNAME 'localhost'"),
        ({"DELIVERY_EHLO_HOSTNAME": "mta1"}, "not a fully qualified domain name"),
        ({"HEALTHMAIL_MASTER_KEY": ""}, "No master key"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY is not set"),
        ({"PUBLIC_BASE_URL": "http://mail.example.org"}, "is not an https:// URL"),
        ({"SESSION_COOKIE_SECURE": "False"}, "SESSION_COOKIE_SECURE is off"),
        ({"CSRF_COOKIE_SECURE": "False"}, "CSRF_COOKIE_SECURE is off"),
        ({"WEBHOOK_ALLOW_PRIVATE_TARGETS": "True"}, "WEBHOOK_ALLOW_PRIVATE_TARGETS is on"),
    ],
)
def test_production_refuses_to_start_on_an_unsafe_value(overrides, message):
    started = _start_production(**overrides)
    assert started.returncode != 0
    assert "Unsafe production configuration" in started.stderr
    assert message in started.stderr


def test_every_problem_is_listed_at_once():
    values = {"DEBUG": True, "PUBLIC_BASE_URL": "http://x", "DELIVERY_EHLO_HOSTNAME": ""}
    problems = production_problems(values)
    assert {problem.id for problem in problems} == {
        "healthmail.E001",
        "healthmail.E002",
        "healthmail.E003",
        "healthmail.E004",
        "healthmail.E005",
        "healthmail.E007",
    }


@pytest.mark.django_db
def test_check_deploy_reports_the_same_rules(settings):
    settings.DELIVERY_EHLO_HOSTNAME = "localhost"
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    with pytest.raises(SystemCheckError) as raised:
        call_command("check", deploy=True)
    assert "healthmail.E007" in str(raised.value)
    assert "healthmail.E006" in str(raised.value)


@pytest.mark.django_db
def test_check_deploy_needs_an_spf_include_once_sender_domains_exist(settings, tenant_a):
    from delivery.checks import spf_include_check
    from delivery.sender_domains import services
    from healthmail.tenants.context import tenant_context
    from tests.delivery.test_sender_domains import ADMIN

    settings.DELIVERY_SPF_INCLUDE = ""
    assert spf_include_check(None) == []  # no sender domain yet: nothing to publish
    with tenant_context(tenant_a):
        services.sender_domain_add(tenant=tenant_a, actor=ADMIN, domain="mail.clinic-a.test")
    assert [message.id for message in spf_include_check(None)] == ["delivery.E001"]
    settings.DELIVERY_SPF_INCLUDE = "_spf.mta.example.org"
    assert spf_include_check(None) == []


@pytest.mark.django_db
def test_check_deploy_passes_a_safe_configuration(settings):
    """Nothing else among the deploy checks fails a safe configuration (the migrate job runs it)."""
    settings.DELIVERY_EHLO_HOSTNAME = "mta1.example.org"
    settings.PUBLIC_BASE_URL = "https://mail.example.org"
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    settings.DELIVERY_SPF_INCLUDE = "_spf.mta.example.org"
    call_command("check", deploy=True, fail_level="ERROR")

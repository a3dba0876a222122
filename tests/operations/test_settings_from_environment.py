"""Deployment settings really come from the environment: base settings imported in a fresh
interpreter with variables set, as a container would start; secrets from files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.operations.settings_inventory import ROOT

PRINT = """
import json
from healthmail.settings import base
print(json.dumps({
    "ehlo": base.DELIVERY_EHLO_HOSTNAME,
    "spf": base.DELIVERY_SPF_INCLUDE,
    "portal_days": base.PORTAL_EXPIRY.days,
    "claim_batch": base.DELIVERY_CLAIM_BATCH,
    "webhook_private": base.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    "streams": base.DELIVERY_STREAMS,
}))
"""


def _base_settings(**variables: str) -> dict:
    ours = ("DELIVERY_", "PORTAL_", "WEBHOOK_")
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(ours)}
    done = subprocess.run(
        [sys.executable, "-c", PRINT],
        cwd=ROOT,
        env={**inherited, **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_defaults_without_any_variable():
    values = _base_settings()
    assert values["ehlo"] == "localhost"
    assert values["spf"] == ""  # no placeholder: the page says what to configure
    assert values["portal_days"] == 30
    assert values["claim_batch"] == 200
    assert values["webhook_private"] is False
    assert values["streams"]["transactional"]["relay"] is None


def test_variables_reach_the_settings_and_relay_passwords_come_from_files(tmp_path):
    secret = tmp_path / "relay-password"
    secret.write_text("s3cret-from-a-mounted-file\n")
    values = _base_settings(
        DELIVERY_EHLO_HOSTNAME="mta1.example.org",
        DELIVERY_SPF_INCLUDE="_spf.example.org",
        PORTAL_EXPIRY_DAYS="7",
        DELIVERY_CLAIM_BATCH="50",
        DELIVERY_MARKETING_RELAY_HOST="smtp-relay.example.net",
        DELIVERY_MARKETING_RELAY_PORT="2525",
        DELIVERY_MARKETING_RELAY_USERNAME="healthmail",
        DELIVERY_MARKETING_RELAY_PASSWORD="ignored-when-the-file-is-set",
        DELIVERY_MARKETING_RELAY_PASSWORD_FILE=str(secret),
        DELIVERY_TRANSACTIONAL_RETURN_PATH_DOMAIN="bounces.example.org",
    )
    assert values["ehlo"] == "mta1.example.org"
    assert values["spf"] == "_spf.example.org"
    assert values["portal_days"] == 7
    assert values["claim_batch"] == 50
    assert values["streams"]["marketing"]["relay"] == {
        "host": "smtp-relay.example.net",
        "port": 2525,
        "username": "healthmail",
        "password": "s3cret-from-a-mounted-file",
    }
    assert values["streams"]["transactional"]["relay"] is None
    assert values["streams"]["transactional"]["return_path_domain"] == "bounces.example.org"


def test_a_relay_from_the_environment_becomes_the_streams_smart_host(settings):
    from delivery.engine.config import stream_identity

    settings.DELIVERY_STREAMS = {
        "marketing": {
            "relay": {"host": "smtp-relay.example.net", "port": 2525, "username": "u", "password": "p"}
        }
    }
    relay = stream_identity("marketing").relay
    assert (relay.host, relay.port) == ("smtp-relay.example.net", 2525)
    assert (relay.username, relay.password) == ("u", "p")
    assert stream_identity("transactional").relay is None

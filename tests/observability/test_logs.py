"""JSON logs carry request_id and tenant_id, and never the PHI a request carries."""

import json
import logging

import pytest
from django.urls import reverse

from healthmail.accounts.roles import Role
from healthmail.celery import app as celery_app

from .conftest import json_lines as _lines

pytestmark = pytest.mark.django_db

PATIENT_NAME = "Jane Synthetic-Doe"
PATIENT_EMAIL = "jane.synthetic.doe@example.org"
PATIENT_MRN = "MRN-99887766"


class _NoWorkers:
    def active_queues(self):
        return None


def test_request_log_is_json_with_request_id_and_tenant_id(json_log, member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    response = client.post(
        reverse("tenants:settings"),
        {"postal_address": "9 Example Road", "timezone": "UTC", "idle_timeout_minutes": "20"},
        HTTP_X_REQUEST_ID="test-request-0001",
    )
    assert response.status_code == 302
    assert response["X-Request-ID"] == "test-request-0001"
    lines = _lines(json_log)
    [request_line] = [line for line in lines if line["message"] == "request"]
    assert request_line["request_id"] == "test-request-0001"
    assert request_line["tenant_id"] == str(tenant_a.pk)
    assert request_line["route"] == "/settings/organization/"
    assert (request_line["method"], request_line["status"]) == ("POST", 302)
    assert {"time", "level", "logger"} <= set(request_line)


def test_platform_request_has_no_tenant_id(json_log, platform_admin_client):
    platform_admin_client.get(reverse("tenants:tenant_list"))
    [request_line] = [line for line in _lines(json_log) if line["message"] == "request"]
    assert request_line["tenant_id"] == ""
    assert len(request_line["request_id"]) == 32


def test_request_id_is_made_when_missing_or_malformed(client):
    assert len(client.get("/metrics")["X-Request-ID"]) == 32
    echoed = client.get("/metrics", HTTP_X_REQUEST_ID="bad id\r\nX-Injected: 1")["X-Request-ID"]
    assert len(echoed) == 32
    assert "Injected" not in echoed


def test_phi_in_requests_never_reaches_the_logs(json_log, member_client, tenant_a, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    # No worker answers, so /healthz says 503 and Django logs it with the request attached.
    monkeypatch.setattr(celery_app.control, "inspect", lambda timeout: _NoWorkers())
    client = member_client(Role.TENANT_ADMIN)
    query = {"patient": PATIENT_NAME, "email": PATIENT_EMAIL, "mrn": PATIENT_MRN}
    phi_body = {
        "postal_address": f"{PATIENT_NAME}, {PATIENT_EMAIL}, {PATIENT_MRN}",
        "timezone": "UTC",
        "idle_timeout_minutes": "20",
    }
    client.get(reverse("tenants:settings"), query)
    client.post(reverse("tenants:settings") + f"?email={PATIENT_EMAIL}", phi_body)  # saved: audited
    client.post(reverse("tenants:settings"), {**phi_body, "timezone": PATIENT_NAME})  # refused form
    client.get("/no/such/page/", query)
    assert client.get("/healthz", query, HTTP_X_REQUEST_ID="health-probe-0001").status_code == 503
    client.post(
        "/api/v1/no-such-endpoint/",
        data=json.dumps({"name": PATIENT_NAME, "email": PATIENT_EMAIL}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {PATIENT_MRN}",
    )
    output = json_log.getvalue()
    assert output.count('"message": "request"') >= 5  # the requests were logged, only without PHI
    [unavailable] = [line for line in _lines(json_log) if line["logger"] == "django.request"]
    assert (unavailable["request"], unavailable["request_id"]) == ("GET /healthz", "health-probe-0001")
    for secret in (PATIENT_NAME, PATIENT_EMAIL, PATIENT_MRN, "Synthetic-Doe", "jane.synthetic"):
        assert secret not in output
        for record in caplog.records:
            assert secret not in record.getMessage()
            assert secret not in repr(record.__dict__)


def test_celery_keeps_the_json_logging():
    """With a setup_logging receiver, Celery leaves the root handlers (JSON, PHI-safe) alone."""
    from celery import signals

    from healthmail import observability

    receivers = [receiver for receiver, _ in signals.setup_logging.send(sender=None, loglevel="INFO")]
    assert observability._keep_django_logging in receivers

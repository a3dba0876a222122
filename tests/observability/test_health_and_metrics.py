"""/healthz names what is down (503); /metrics speaks Prometheus, behind an optional token."""

import pytest
from django.db.utils import OperationalError

from healthmail import observability
from healthmail.celery import app as celery_app

pytestmark = pytest.mark.django_db


class _Inspect:
    def __init__(self, replies):
        self.replies = replies

    def active_queues(self):
        return self.replies


def _workers(monkeypatch, replies):
    monkeypatch.setattr(celery_app.control, "inspect", lambda timeout: _Inspect(replies))


BOTH_QUEUES = {
    "transactional@host": [{"name": "transactional"}],
    "marketing@host": [{"name": "marketing"}],
}


def test_healthy_when_database_redis_and_both_queues_answer(client, monkeypatch):
    _workers(monkeypatch, BOTH_QUEUES)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "database": "ok",
        "redis": "ok",
        "workers": {"transactional": 1, "marketing": 1},
        "status": "ok",
        "down": [],
    }


def test_no_worker_running_is_503_naming_workers(client, monkeypatch):
    _workers(monkeypatch, None)  # what Celery returns when no worker replies in time
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["workers"]
    assert body["workers"] == {"transactional": 0, "marketing": 0}
    assert (body["database"], body["redis"], body["status"]) == ("ok", "ok", "degraded")


def test_a_queue_without_workers_is_503(client, monkeypatch):
    _workers(monkeypatch, {"transactional@host": [{"name": "transactional"}]})
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"] == {"transactional": 1, "marketing": 0}


def test_database_down_is_503_naming_database(client, monkeypatch):
    _workers(monkeypatch, BOTH_QUEUES)

    def refuse():
        raise OperationalError("connection to server at 10.0.0.5 failed: password authentication failed")

    monkeypatch.setattr(observability, "_check_database", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["database"]
    assert response.json()["database"] == "down: OperationalError"
    assert "10.0.0.5" not in response.content.decode()


def test_redis_down_is_503_and_skips_the_worker_broadcast(client, monkeypatch):
    def refuse():
        raise ConnectionError("redis unreachable")

    def must_not_run():
        raise AssertionError("the worker check needs Redis")

    monkeypatch.setattr(observability, "_check_redis", refuse)
    monkeypatch.setattr(observability, "_check_workers", must_not_run)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["redis", "workers"]


def test_metrics_exposes_prometheus_text(client, settings):
    settings.METRICS_TOKEN = ""
    # An open path (no sign-in redirect) that no route matches: a 404 of its own, not one another
    # test happened to leave in the process-wide counters.
    assert client.get("/static/no/such/page.css").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE healthmail_http_requests_total counter" in text
    assert 'healthmail_http_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert "/no/such/page" not in text  # routes, never concrete paths


def test_metrics_token_is_required_when_set(client, settings):
    settings.METRICS_TOKEN = "synthetic-metrics-token"
    settings.METRICS_ALLOWED_NETWORKS = []  # token only
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic synthetic-metrics-token").status_code == 401
    granted = client.get("/metrics", HTTP_AUTHORIZATION="Bearer synthetic-metrics-token")
    assert granted.status_code == 200
    assert b"healthmail_http_requests_total" in granted.content


def test_metrics_refuse_an_outside_address_when_nothing_is_configured(client, settings):
    """The default: no token, loopback only. An address on the internet is refused, not served."""
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_metrics_answer_allowed_networks_and_the_token_from_anywhere(client, settings):
    settings.METRICS_TOKEN = "synthetic-metrics-token"
    settings.METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16", "fd00:20::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="fd00:20::9").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.21.3.4").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401  # loopback not listed
    token = "Bearer synthetic-metrics-token"
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=token).status_code == 200


def test_metrics_networks_that_do_not_parse_are_a_configuration_error(client, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_NETWORKS"):
        client.get("/metrics", REMOTE_ADDR="10.0.0.1")

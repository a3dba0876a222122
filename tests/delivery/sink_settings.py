"""Settings for worker processes of the chaos tests and the delivery benchmarks: the settings module
named by SINK_BASE_SETTINGS (test or dev), with DNS pointed at the sink (the zone file of
tests/delivery/sink.py, DELIVERY_RESOLVER=static) and the DELIVERY_* tunables taken from the environment."""

import importlib
import os

_base = importlib.import_module(os.environ.get("SINK_BASE_SETTINGS", "healthmail.settings.test"))
globals().update({name: value for name, value in vars(_base).items() if name.isupper()})

DELIVERY_CA_FILE = os.environ["DELIVERY_CA_FILE"]
DELIVERY_RESOLVER = "static"
DELIVERY_DNS_ZONE_FILE = os.environ["DELIVERY_DNS_ZONE_FILE"]
DELIVERY_EHLO_HOSTNAME = "sender.healthmail.test"
for _name, _value in os.environ.items():
    if _name.startswith("DELIVERY_") and _name not in (
        "DELIVERY_CA_FILE",
        "DELIVERY_RESOLVER",
        "DELIVERY_DNS_ZONE_FILE",
    ):
        globals()[_name] = _value  # engine settings are converted by delivery/engine/config.py

if os.environ.get("SINK_BROKER_URL"):  # the run's own Redis database (the chaos test flushes it)
    CELERY_BROKER_URL = os.environ["SINK_BROKER_URL"]
    CELERY_RESULT_BACKEND = REDIS_URL = os.environ["SINK_BROKER_URL"]
    CACHES = {**_base.CACHES, "default": {**_base.CACHES["default"], "LOCATION": REDIS_URL}}
# The chaos test terminates exactly these database sessions (a PostgreSQL restart, as seen by them).
_base.DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = os.environ.get(
    "SINK_APPLICATION_NAME", "healthmail-worker"
)

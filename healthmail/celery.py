"""Celery app with two queues: `transactional` (own workers, never behind bulk) and `marketing`.

Tasks carry ids, never data; the database is the queue of record, the broker only wakes workers.
"""

import gc
import os

from celery import Celery, signals
from kombu import Queue

from healthmail import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthmail.settings.dev")

broker.install()  # kombu's Redis transport, patched so a worker survives a broker outage (broker.py)
app = Celery("healthmail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("transactional"), Queue("marketing"))
app.conf.task_default_queue = "marketing"
app.conf.task_routes = {
    "*.transactional_*": {"queue": "transactional"},
    "healthmail.tasks.transactional_ping": {"queue": "transactional"},
}
app.autodiscover_tasks()


@signals.worker_init.connect  # type: ignore[untyped-decorator]  # Celery has no types
def load_urls(**_: object) -> None:
    """Load the URL configuration in the main process, before the pool forks: every child would
    otherwise import all the views on its first link (unsubscribe, portal, tracking), ~0.4 s each.
    Then freeze what is loaded out of the garbage collector's reach (Python's advice for a process
    that forks without exec): a full collection in a child walked the ~200,000 objects of Django and
    the application every few batches of a journey advance (~0.1 s each, ~20 µs per contact:
    docs/benchmarks.md, journeys) and wrote to pages the children otherwise share with the parent."""
    from django.urls import reverse

    reverse("healthz")  # resolving any name imports the whole configuration
    gc.freeze()

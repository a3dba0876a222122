"""Celery app with two queues: `transactional` (own workers, never behind bulk) and `marketing`.

Tasks carry ids, never data; the database is the queue of record, the broker only wakes workers.
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthmail.settings.dev")

app = Celery("healthmail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("transactional"), Queue("marketing"))
app.conf.task_default_queue = "marketing"
app.conf.task_routes = {
    "*.transactional_*": {"queue": "transactional"},
    "healthmail.tasks.transactional_ping": {"queue": "transactional"},
}
app.autodiscover_tasks()

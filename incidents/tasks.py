from healthmail.celery import app

from . import access_reviews, clocks, oversight


@app.task(ignore_result=True, soft_time_limit=280, time_limit=300)
def incident_clock_alerts() -> int:
    """Hourly (idempotent: each threshold is raised once): deadline alerts at 30/14/7/1 days."""
    return clocks.clock_alerts_raise()


@app.task(ignore_result=True, soft_time_limit=280, time_limit=300)
def baa_expiry_reminders() -> int:
    """Daily (idempotent): reminders 60/30/14/7/1 days before a tenant's BAA expires."""
    return oversight.baa_reminders()


@app.task(ignore_result=True, soft_time_limit=280, time_limit=300)
def access_review_reminders() -> int:
    """Hourly (idempotent): reminders 30/14/7/1 days before a tenant's access review is due."""
    return access_reviews.review_reminders()

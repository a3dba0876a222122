from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The marketer's and the compliance officer's desk: the home page per role and the calendar.
    An interface app on top of the domain apps: it reads their selectors and writes nothing."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

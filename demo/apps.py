from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo tenant and its story (`manage.py seed_demo`): development data that drives every
    app, so it sits on top of all of them and nothing imports it."""

    name = "demo"
    default_auto_field = "django.db.models.BigAutoField"

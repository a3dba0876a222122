"""Patient pages, under /p/ (open: no login; each needs a valid signed link)."""

from django.urls import path

from . import public_views

app_name = "consent_public"

urlpatterns = [
    path("authorize/<str:token>/", public_views.authorize, name="authorize"),
    path("authorize/<str:token>/copy/", public_views.authorization_copy, name="authorization_copy"),
    path("preferences/<str:token>/", public_views.preferences, name="preferences"),
    path("unsubscribe/<str:token>/", public_views.unsubscribe, name="unsubscribe"),
    path("undo/<str:token>/", public_views.waiver_undo, name="waiver_undo"),
]

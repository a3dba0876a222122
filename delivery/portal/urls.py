"""Public portal routes, under /p/portal/ (open: the link and a verification are the only keys)."""

from django.urls import path

from . import views

app_name = "portal"

urlpatterns = [
    path("<str:token>/", views.landing, name="landing"),
    path("<str:token>/code/", views.code_send, name="code_send"),
    path("<str:token>/verify/", views.verify, name="verify"),
    path("<str:token>/reply/", views.reply, name="reply"),
    path("<str:token>/passphrase/", views.passphrase, name="passphrase"),
    path("<str:token>/attachments/<int:index>/", views.attachment, name="attachment"),
    path("<str:token>/links/<int:index>/", views.link, name="link"),
]

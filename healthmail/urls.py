from django.urls import include, path

from healthmail import devmailbox, observability

urlpatterns = [
    path("", include("healthmail.accounts.urls")),
    path("platform/", include("healthmail.tenants.urls")),
    path("api/", include("healthmail.api.urls")),
    path("healthz", observability.healthz, name="healthz"),
    path("metrics", observability.metrics, name="metrics"),
    path("dev/mailbox/", devmailbox.mailbox_list, name="dev_mailbox"),
    path("dev/mailbox/<str:key>/", devmailbox.mailbox_message, name="dev_mailbox_message"),
]

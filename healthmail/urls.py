from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from healthmail import design_system, devmailbox, observability


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    return HttpResponsePermanentRedirect(static("healthmail/favicon.svg"))


urlpatterns = [
    # The home page per role (dashboard.views.home) answers "/" before the accounts pages; it falls
    # back to accounts' task list for the roles without a desk.
    path("", include("dashboard.urls")),
    path("", include("healthmail.accounts.urls")),
    path("", include("healthmail.tenant_pages.urls")),
    path("api/v1/", include("segmentation.api_urls")),
    path("api/", include("healthmail.api.urls")),
    # The FHIR base the EHR standards and issue 20 name; the canonical one is /api/fhir/r4/
    # (fhir_api/api.py: _base), which every Location, fullUrl and the CapabilityStatement give.
    path("fhir/r4/", include(("fhir_api.urls", "fhir_alias"))),
    path("audit/", include("audit.urls")),
    path("segments/", include("segmentation.urls")),
    path("consent/", include("consent.urls")),
    path("p/portal/", include("delivery.portal.urls")),
    path("t/", include("delivery.tracking.urls")),
    path("portal-messages/", include("delivery.portal.staff_urls")),
    path("webhooks/", include("delivery.webhooks.urls")),
    path("p/", include("consent.public_urls")),
    path("contacts/imports/", include("contacts.imports.urls")),
    path("sender-domains/", include("delivery.sender_domains.urls")),
    path("delivery/", include("delivery.urls")),
    path("contacts/", include("contacts.urls")),
    path("retention/", include("retention.urls")),
    path("incidents/", include("incidents.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("journeys/", include("journeys.urls")),
    path("ui/", design_system.gallery, name="ui_gallery"),
    path("healthz", observability.healthz, name="healthz"),
    path("metrics", observability.metrics, name="metrics"),
    # Browsers ask for /favicon.ico whatever the page links; the icon is a static file.
    path("favicon.ico", favicon),
    path("dev/mailbox/", devmailbox.mailbox_list, name="dev_mailbox"),
    path("dev/mailbox/<str:key>/", devmailbox.mailbox_message, name="dev_mailbox_message"),
]

# problem+json under /api/, a short HTML page elsewhere (templates/400|403|404|500.html).
handler400 = "healthmail.api.errors.bad_request"
handler403 = "healthmail.api.errors.permission_denied"
handler404 = "healthmail.api.errors.page_not_found"
handler500 = "healthmail.api.errors.server_error"

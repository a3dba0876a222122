"""FHIR R4 routes, included under /api/fhir/r4/ by healthmail/api/urls.py."""

from django.urls import path, re_path

from . import api, consent_api
from .outcomes import fhir_not_found

urlpatterns = [
    path("metadata", api.Metadata.as_view(), name="fhir-metadata"),
    path(
        ".well-known/smart-configuration", api.SmartConfiguration.as_view(), name="fhir-smart-configuration"
    ),
    path("Patient", api.PatientType.as_view(), name="fhir-patient-type"),
    path("Patient/<str:resource_id>", api.PatientInstance.as_view(), name="fhir-patient"),
    path(
        "CommunicationRequest", api.CommunicationRequestType.as_view(), name="fhir-communication-request-type"
    ),
    path("Communication", api.CommunicationType.as_view(), name="fhir-communication-type"),
    path("Communication/<str:resource_id>", api.CommunicationInstance.as_view(), name="fhir-communication"),
    path("Consent", consent_api.ConsentType.as_view(), name="fhir-consent-type"),
    path("Consent/<str:resource_id>", consent_api.ConsentInstance.as_view(), name="fhir-consent"),
    # Last: any other URL under the FHIR base is an OperationOutcome 404.
    re_path(r"^.*$", fhir_not_found, name="fhir-not-found"),
]

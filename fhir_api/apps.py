from django.apps import AppConfig


class FhirApiConfig(AppConfig):
    name = "fhir_api"
    verbose_name = "FHIR R4 interface"
    default_auto_field = "django.db.models.BigAutoField"

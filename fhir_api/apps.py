from django.apps import AppConfig


class FhirApiConfig(AppConfig):
    name = "fhir_api"
    verbose_name = "FHIR R4 interface"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from healthmail.crypto.index_rotation import ChainedColumn, chained_register

        # A request's business identifier is kept only as its index: re-keyed, not recomputed.
        chained_register(
            ChainedColumn(
                "fhir_api_communicationrequestrecord",
                "identifier_index",
                "identifier_index_next",
                "fhir_communication_request",
            )
        )

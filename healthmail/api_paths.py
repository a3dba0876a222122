"""Which URLs are the API: everything under /api/, and the FHIR base the EHR standards name
(/fhir/r4/, the same views as /api/fhir/r4/). One list, so key authentication, problem/
OperationOutcome errors, Cache-Control: no-store, the body-size limit and the session checks all
agree on what is an API request (a module of its own: the middleware packages that ask import it
without importing each other)."""

from __future__ import annotations

API_PREFIXES = ("/api/", "/fhir/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)

"""Resources shaped like the official FHIR R4 examples (hl7.org/fhir/R4, "patient-example",
"communicationrequest-example", "consent-example-basic"), written here from their published
structure; values that the examples leave out or that we must control (addresses, ids) are ours."""

from __future__ import annotations

import base64
import copy

MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"  # the example's "Acme Healthcare" MRN assigner
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

# patient-example ("Peter James Chalmers"), as published: an Australian address (state "Vic").
PATIENT_EXAMPLE = {
    "resourceType": "Patient",
    "id": "example",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">Peter James <b>Chalmers</b> ("Jim")</div>',
    },
    "identifier": [
        {
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": MRN_SYSTEM,
            "value": "12345",
            "period": {"start": "2001-05-06"},
            "assigner": {"display": "Acme Healthcare"},
        }
    ],
    "active": True,
    "name": [
        {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
        {"use": "usual", "given": ["Jim"]},
        {"use": "maiden", "family": "Windsor", "given": ["Peter", "James"], "period": {"end": "2002"}},
    ],
    "telecom": [
        {"use": "home"},
        {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
        {"system": "phone", "value": "(03) 3410 5613", "use": "mobile", "rank": 2},
        {"system": "phone", "value": "(03) 5555 8834", "use": "old", "period": {"end": "2014"}},
    ],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00",
            }
        ]
    },
    "deceasedBoolean": False,
    "address": [
        {
            "use": "home",
            "type": "both",
            "text": "534 Erewhon St PeasantVille, Rainbow, Vic  3999",
            "line": ["534 Erewhon St"],
            "city": "PleasantVille",
            "district": "Rainbow",
            "state": "Vic",
            "postalCode": "3999",
            "period": {"start": "1974-12-25"},
        }
    ],
    "managingOrganization": {"reference": "Organization/1"},
}


def us_patient(*, mrn: str = "12345", email: str = "peter.chalmers@patients.test") -> dict:
    """The example moved to a US address, with the email telecom a mail platform needs."""
    patient = copy.deepcopy(PATIENT_EXAMPLE)
    del patient["id"]  # a create carries no id
    patient["identifier"][0]["value"] = mrn
    patient["telecom"] = [
        {"system": "email", "value": email, "use": "home"},
        {"system": "phone", "value": "(415) 555-6473", "use": "work", "rank": 1},
    ]
    patient["address"] = [
        {
            "use": "home",
            "line": ["534 Erewhon St"],
            "city": "Pleasantville",
            "state": "CA",
            "postalCode": "94110",
        }
    ]
    return patient


# communicationrequest-example: the published one is a bare `status: active` with a subject; the
# elements a sender needs (identifier, category, payload) follow the R4 CommunicationRequest structure.
def communication_request(*, patient_id, template_id, identifier: str = "REQ-1", code: str = "TREAT") -> dict:
    return {
        "resourceType": "CommunicationRequest",
        "identifier": [{"system": "urn:oid:1.3.4.5.6.7", "value": identifier}],
        "status": "active",
        "category": [{"coding": [{"system": ACT_REASON, "code": code}]}],
        "priority": "routine",
        "subject": {"reference": f"Patient/{patient_id}"},
        "payload": [{"contentReference": {"reference": f"Template/{template_id}"}}],
        "extension": [
            {
                "url": "https://healthmail.example/fhir/StructureDefinition/template-data",
                "extension": [{"url": "appointment_time", "valueString": "Monday 9:00"}],
            }
        ],
        "authoredOn": "2026-12-01T09:00:00Z",
    }


# consent-example-basic: a patient-privacy Consent (LOINC 59284-0 category, a date only).
CONSENT_EXAMPLE_BASIC = {
    "resourceType": "Consent",
    "id": "consent-example-basic",
    "status": "active",
    "scope": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
        ]
    },
    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
    "patient": {"reference": "Patient/f001", "display": "P. van de Heuvel"},
    "dateTime": "2018-12-28",
    "organization": [{"reference": "Organization/f001"}],
    "sourceAttachment": {"title": "The terms of the consent in lawyer speak."},
    "policyRule": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
    },
    "provision": {"period": {"start": "1964-01-01", "end": "2019-01-01"}},
}


def marketing_consent(*, patient_id, provision: str, topic: str = "marketing_newsletters") -> dict:
    consent = copy.deepcopy(CONSENT_EXAMPLE_BASIC)
    del consent["id"]
    consent["patient"] = {"reference": f"Patient/{patient_id}"}
    consent["category"] = [
        {"coding": [{"system": "https://healthmail.example/fhir/CodeSystem/consent-topic", "code": topic}]}
    ]
    consent["dateTime"] = "2026-12-01T10:00:00+00:00"
    consent["provision"] = {"type": provision}
    return consent


# consent-example-signature (R4): a signed patient-privacy Consent with a business identifier, the
# patient as performer, a recipient actor (PRCP, primary information recipient) and a period; its
# nested provision permits one CDA document. Written from the published structure.
CONSENT_EXAMPLE_SIGNATURE = {
    "resourceType": "Consent",
    "id": "consent-example-signature",
    "meta": {"tag": [{"system": ACT_REASON, "code": "HTEST", "display": "test health data"}]},
    "identifier": [
        {"system": "urn:oid:2.16.840.1.113883.3.72.5.9.1", "value": "494e0c7a-a69e-4fb4-9d02-6aae747790d7"}
    ],
    "status": "active",
    "scope": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
        ]
    },
    "category": [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentcategorycodes", "code": "npp"}]}
    ],
    "patient": {"reference": "Patient/72"},
    "dateTime": "2016-05-26T00:41:10-04:00",
    "performer": [{"reference": "Patient/72"}],
    "organization": [{"reference": "Organization/f001"}],
    "policyRule": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
    },
    "provision": {
        "period": {"start": "2015-10-10", "end": "2016-10-10"},
        "actor": [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "PRCP",
                        }
                    ]
                },
                "reference": {"reference": "Practitioner/13"},
            }
        ],
        "provision": [
            {
                "type": "permit",
                "actor": [
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "AUT",
                                }
                            ]
                        },
                        "reference": {"reference": "Practitioner/xcda-author"},
                    }
                ],
                "class": [{"system": "urn:ietf:bcp:13", "code": "application/hl7-cda+xml"}],
                "code": [
                    {"coding": [{"system": "http://loinc.org", "code": "34133-9"}]},
                    {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
                ],
            }
        ],
    },
}

HIPAA_EXTENSION = "https://healthmail.example/fhir/StructureDefinition/hipaa-authorization"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SCANNED_FORM = b"%PDF-1.4\n% signed authorization form\n"


def as_hipaa_authorization(consent: dict, *, patient_id, purpose: str = "HMARKT") -> dict:
    """An R4 Consent made a HIPAA authorization: the policyRule that says so, a permit, the purpose
    of use (the kind) and our patient; nothing else is added."""
    consent = copy.deepcopy(consent)
    consent.pop("id", None)
    consent["patient"] = {"reference": f"Patient/{patient_id}"}
    consent["performer"] = [{"reference": f"Patient/{patient_id}"}]
    consent["policyRule"] = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/consentpolicycodes", "code": "hipaa-auth"}
        ]
    }
    consent["provision"]["type"] = "permit"
    consent["provision"]["purpose"] = [{"system": ACT_REASON, "code": purpose}]
    return consent


def hipaa_authorization(*, patient_id, signed_on, expires_on, identifier: str = "AUTH-1") -> dict:
    """The signature example completed into a valid marketing authorization signed on `signed_on`."""
    consent = as_hipaa_authorization(CONSENT_EXAMPLE_SIGNATURE, patient_id=patient_id)
    consent["identifier"][0]["value"] = identifier
    consent["category"] = [{"coding": [{"system": "http://loinc.org", "code": "64292-6"}]}]
    consent["dateTime"] = str(signed_on)
    consent["performer"][0]["display"] = "Peter James Chalmers"
    consent["sourceAttachment"] = {
        "title": "Marketing authorization (signed in the clinic)",
        "contentType": "application/pdf",
        "data": base64.b64encode(SCANNED_FORM).decode(),
    }
    provision = consent["provision"]
    provision["period"] = {"start": str(signed_on), "end": str(expires_on)}
    provision["actor"] = [
        {
            "role": {"coding": [{"system": PARTICIPATION, "code": "CST"}]},
            "reference": {"display": "Synthetic Clinic and its marketing staff"},
        },
        {
            "role": {"coding": [{"system": PARTICIPATION, "code": "PRCP"}]},
            "reference": {"display": "Synthetic Clinic's email service provider"},
        },
    ]
    provision["code"] = [
        {"text": "Your name, email address and the services you used in the last two years."}
    ]
    del provision["provision"]
    consent["extension"] = [
        {
            "url": HIPAA_EXTENSION,
            "extension": [
                {"url": "purpose", "valueString": "To send you news about services that may interest you."},
                {
                    "url": "revocation-rights",
                    "valueString": "You may revoke this at any time by writing to us.",
                },
                {
                    "url": "conditioning-statement",
                    "valueString": "Your treatment and payment do not depend on signing.",
                },
                {
                    "url": "redisclosure-statement",
                    "valueString": "The recipient may share it again and it may lose protection.",
                },
            ],
        }
    ]
    return consent

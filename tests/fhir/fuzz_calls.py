"""What the FHIR fuzz (test_fuzz.py) draws: the interactions, the credentials, ids, bodies, media
types and search parameters of each call, as hypothesis strategies over a World of two tenants."""

from __future__ import annotations

import copy
import datetime
import json
import string
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import requests
from hypothesis import strategies as st

from .examples import MRN_SYSTEM

FHIR = "application/fhir+json"
BASES = ("/api/fhir/r4/", "/fhir/r4/")


@dataclass(frozen=True)
class Interaction:
    method: str
    path: str  # with {id} for the resource id
    scopes: tuple[str, ...]  # what the view requires; () for the open ones
    resource: str = ""  # the body's resourceType, for writes
    kind: str = ""  # Patient | Communication: what {id} names


INTERACTIONS = {
    "metadata": Interaction("GET", "metadata", ()),
    "smart-configuration": Interaction("GET", ".well-known/smart-configuration", ()),
    "patient-create": Interaction("POST", "Patient", ("contacts:write",), "Patient"),
    "patient-update": Interaction("PUT", "Patient/{id}", ("contacts:write",), "Patient", "Patient"),
    "patient-read": Interaction("GET", "Patient/{id}", ("contacts:read",), kind="Patient"),
    "patient-search": Interaction("GET", "Patient", ("contacts:read",)),
    "communication-request-create": Interaction(
        "POST", "CommunicationRequest", ("messages:send",), "CommunicationRequest"
    ),
    "communication-read": Interaction("GET", "Communication/{id}", ("messages:read",), kind="Communication"),
    "communication-search": Interaction("GET", "Communication", ("messages:read",)),
    "consent-create": Interaction("POST", "Consent", ("consent:write",), "Consent"),
}


# --- the world: two tenants over a live server ---------------------------------------------------------
@dataclass
class World:
    url: str
    keys: dict[str, str]  # credential name → Authorization header value ("" for none)
    smart_scopes: frozenset[str]  # what the SMART token holds
    own: dict[str, str]  # kind → an id of the fuzzed tenant
    foreign: dict[str, str]  # kind → an id of the other tenant
    foreign_mrn: str
    session: requests.Session


# --- strategies: resources as fhir.resources accepts them ------------------------------------------------
def _text(max_size: int = 30) -> st.SearchStrategy[str]:
    return (
        st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=max_size)
        .map(str.strip)
        .filter(bool)
    )


_uris = st.one_of(
    st.sampled_from([MRN_SYSTEM, "urn:oid:2.16.840.1.113883.4.1", "http://hospital.example/mrn"]),
    st.from_regex(r"\Aurn:oid:[12](\.[0-9]{1,5}){1,6}\Z"),
    st.just("urn:healthmail:external-id:mrn"),
)
_codes = st.from_regex(r"\A[A-Za-z0-9\-]{1,12}\Z")
_dates = st.dates(min_value=datetime.date(1890, 1, 1), max_value=datetime.date(2030, 12, 31)).map(str)
_emails = st.one_of(
    st.from_regex(r"\A[a-z]{1,12}(\.[a-z0-9]{1,8})?@[a-z]{2,12}\.(org|com|test)\Z"),  # addresses we send to
    st.emails().map(str),
    _text(40),
)
_identifier = st.fixed_dictionaries({"system": _uris, "value": _text(20)}, optional={"use": st.just("usual")})
_human_name = st.fixed_dictionaries(
    {},
    optional={
        "use": st.sampled_from(["official", "usual", "nickname"]),
        "family": _text(),
        "given": st.lists(_text(15), min_size=1, max_size=3),
        "text": _text(),
    },
)
_telecom = st.one_of(
    st.fixed_dictionaries({"system": st.just("email"), "value": _emails}),
    st.fixed_dictionaries({"system": st.just("phone"), "value": st.from_regex(r"\A\+?[0-9() \-]{3,20}\Z")}),
)
_address = st.fixed_dictionaries(
    {},
    optional={
        "line": st.lists(_text(), min_size=1, max_size=2),
        "city": _text(),
        "state": st.sampled_from(["CA", "NY", "TX", "WA", "MA", "ZZ", "Bavaria"]),
        "postalCode": st.from_regex(r"\A[0-9]{5}(-[0-9]{4})?\Z") | _text(10),
        "country": st.sampled_from(["US", "US", "DE"]),
    },
)
_communication = st.fixed_dictionaries(
    {
        "language": st.fixed_dictionaries(
            {"coding": st.lists(st.fixed_dictionaries({"code": _codes}), max_size=2)}
        )
    },
    optional={"preferred": st.booleans()},
)


def _reference(world: World, kind: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(f"{kind}/{world.own.get(kind, uuid.uuid4())}"),
        st.just(f"{kind}/{world.foreign.get(kind, uuid.uuid4())}"),
        st.uuids().map(lambda found: f"{kind}/{found}"),
        st.sampled_from(
            ["", "Patient", "Patient/", "Group/1", "http://evil.example/Patient/1", "#contained"]
        ),
        _text(60),
    )


def _patient(world: World, with_id: st.SearchStrategy | None = None) -> st.SearchStrategy[dict]:
    optional = {
        "active": st.booleans(),
        "name": st.lists(_human_name, max_size=2),
        "telecom": st.lists(_telecom, max_size=3),
        "gender": st.sampled_from(["male", "female", "other", "unknown"]),
        "birthDate": _dates,
        "address": st.lists(_address, max_size=2),
        "communication": st.lists(_communication, max_size=2),
        "maritalStatus": st.fixed_dictionaries({"text": _text()}),
    }
    # An identifier (or an email telecom) is what a Patient is stored by: without one, nearly every
    # Patient would stop at that check, and the damaged variants send Patients without one.
    required = {
        "resourceType": st.just("Patient"),
        "identifier": st.lists(_identifier, min_size=1, max_size=3),
    }
    if with_id is not None:  # an update: the id of the URL (or another, refused)
        required["id"] = with_id
    return st.fixed_dictionaries(required, optional=optional)


def _communication_request(world: World) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {
            "resourceType": st.just("CommunicationRequest"),
            "status": st.sampled_from(["active", "draft", "completed"]),
        },
        optional={
            "identifier": st.lists(_identifier, max_size=2),
            "category": st.lists(
                st.fixed_dictionaries(
                    {
                        "coding": st.lists(
                            st.fixed_dictionaries(
                                {
                                    "system": st.just("http://terminology.hl7.org/CodeSystem/v3-ActReason"),
                                    "code": st.sampled_from(["TREAT", "HOPERAT", "HMARKT", "X"]),
                                }
                            ),
                            max_size=2,
                        )
                    }
                ),
                max_size=2,
            ),
            "priority": st.sampled_from(["routine", "urgent"]),
            "subject": st.fixed_dictionaries({"reference": _reference(world, "Patient")}),
            "payload": st.lists(
                st.one_of(
                    st.fixed_dictionaries({"contentString": _text(80)}),
                    st.fixed_dictionaries(
                        {"contentReference": st.fixed_dictionaries({"reference": _text(40)})}
                    ),
                ),
                max_size=3,
            ),
            "occurrenceDateTime": st.datetimes(timezones=st.just(datetime.UTC)).map(
                lambda moment: moment.isoformat()
            ),
        },
    )


def _consent(world: World) -> st.SearchStrategy[dict]:
    from fhir_api.consents import SOURCE_EXTENSION, TOPIC_SYSTEM

    return st.fixed_dictionaries(
        {
            "resourceType": st.just("Consent"),
            "status": st.sampled_from(["active", "draft", "rejected"]),
            "scope": st.just({"coding": [{"code": "patient-privacy"}]}),
            "category": st.lists(
                st.fixed_dictionaries(
                    {
                        "coding": st.lists(
                            st.fixed_dictionaries(
                                {
                                    "system": st.sampled_from([TOPIC_SYSTEM, "http://loinc.org"]),
                                    "code": _codes,
                                }
                            ),
                            min_size=1,
                            max_size=2,
                        )
                    }
                ),
                min_size=1,
                max_size=2,
            ),
        },
        optional={
            "patient": st.fixed_dictionaries({"reference": _reference(world, "Patient")}),
            "dateTime": st.one_of(
                st.datetimes(timezones=st.just(datetime.UTC)).map(lambda m: m.isoformat()), _dates
            ),
            "provision": st.fixed_dictionaries({"type": st.sampled_from(["permit", "deny"])}),
            "extension": st.lists(
                st.fixed_dictionaries(
                    {"url": st.just(SOURCE_EXTENSION), "valueCode": st.sampled_from(["api", "web", "x"])}
                ),
                max_size=1,
            ),
        },
    )


# --- strategies: the same damaged, and anything at all ---------------------------------------------------
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_any_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_hostile_values = st.one_of(
    _any_json,
    st.just("\x00"),
    st.just("a\x00b"),
    st.just("\ud800"),
    st.just("x" * 100_000),
    st.just(["x"] * 5_000),
    st.just(10**400),  # an integer JSON cannot hold in a double
    st.just({"resourceType": "Patient"}),
    st.just(""),
    st.text(st.characters(blacklist_categories=()), max_size=10),  # control characters, surrogates
)
_resource_types = st.one_of(
    st.sampled_from(["Patient", "Observation", "Bundle", "OperationOutcome", "patient", "", "Consent"]),
    _any_json,
)


def _paths(data, prefix=()) -> list[tuple]:
    """Every path into `data` (dict keys and list positions), itself included."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _set(data, path, value):
    if not path:
        return value
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


@st.composite
def _damaged(draw, valid: st.SearchStrategy[dict]) -> dict | list:
    # Copies: strategies such as st.just() hand out the same object every time, and a damage done in
    # place would change what later examples draw (hypothesis refuses such a strategy as flaky).
    resource = copy.deepcopy(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "unknown element", "resourceType", "drop resourceType"]))
        if kind == "value":
            path = draw(st.sampled_from(_paths(resource)))
            resource = _set(resource, path, copy.deepcopy(draw(_hostile_values)))
        elif kind == "unknown element" and isinstance(resource, dict):
            name = draw(st.sampled_from(["favouriteColour", "_id", "\x00", "\ud800", "contained"]))
            resource[name] = copy.deepcopy(draw(_hostile_values))
        elif kind == "resourceType" and isinstance(resource, dict):
            resource["resourceType"] = draw(_resource_types)
        elif isinstance(resource, dict):
            resource.pop("resourceType", None)
    return resource


def _deep(depth: int) -> bytes:
    return ('{"resourceType":"Patient","extension":' + "[" * depth + "]" * depth + "}").encode()


def _encoded(resource) -> bytes:
    # ensure_ascii: unpaired surrogates travel as \\ud800 escapes, as a client's JSON library sends them.
    return json.dumps(resource, ensure_ascii=True).encode()


def _body(world: World, interaction: Interaction, patient_id: str) -> st.SearchStrategy[bytes]:
    valid = {
        "Patient": _patient(world, _weighted((3, st.just(patient_id)), (1, st.uuids().map(str)))),
        "CommunicationRequest": _communication_request(world),
        "Consent": _consent(world),
    }.get(interaction.resource, st.fixed_dictionaries({}))
    hostile = st.one_of(
        _any_json.map(_encoded),
        st.integers(100, 50_000).map(_deep),
        st.sampled_from([b"", b"null", b"{", b'{"resourceType": "Patient",}', b"\xff\xfe", b"NaN", b"1e999"]),
        st.binary(max_size=200),
    )
    return _weighted((4, valid.map(_encoded)), (4, _damaged(valid).map(_encoded)), (2, hostile))


def _weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, each drawn in proportion to its weight: most calls must get past the
    door (a credential that may, a body the view reads) for the views themselves to be fuzzed."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


_readable_types = st.sampled_from(
    [
        FHIR,
        "application/json",
        "application/fhir+json; charset=utf-8",
        "application/fhir+json; fhirVersion=4.0",
    ]
)
_other_types = st.sampled_from(
    [
        "application/fhir+xml",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/json; charset=latin-1",
    ]
)
_accepts = st.sampled_from([FHIR, "application/json", "application/fhir+xml", "*/*", "text/html", ""])
_ugly_ids = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", "..", "%00", "00000000-0000-0000-0000-00000000000g", "1" * 5000, "Patient"]),
)


def percent(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _search(world: World, interaction: Interaction) -> st.SearchStrategy[list[tuple[str, str]]]:
    if interaction.path == "Patient":
        good = st.one_of(
            st.tuples(st.just("identifier"), st.just(f"{MRN_SYSTEM}|12345")),
            st.tuples(st.just("identifier"), st.just(f"urn:healthmail:external-id:mrn|{world.foreign_mrn}")),
            st.tuples(st.just("identifier"), st.tuples(_uris, _text()).map("|".join)),
            st.tuples(st.just("email"), _emails),
        )
    else:
        good = st.tuples(
            st.just("based-on"),
            st.one_of(
                st.uuids().map(lambda found: f"CommunicationRequest/{found}"),
                st.just(f"CommunicationRequest/{world.foreign['Communication']}"),
            ),
        )
    names = st.sampled_from(
        ["identifier", "email", "based-on", "_format", "name", "_count", "", "identifier:of-type"]
    )
    anything = st.tuples(
        names | st.text(max_size=10), st.text(st.characters(blacklist_categories=()), max_size=40)
    )
    return st.lists(st.one_of(good, anything), max_size=3)


@dataclass
class Call:
    credential: str
    base: str
    path: str
    id_kind: str  # own | foreign | unknown | ugly | ""
    query: list[tuple[str, str]]
    body: bytes
    content_type: str
    accept: str
    if_match: bool


@st.composite
def calls(draw, world: World, name: str) -> Call:
    interaction = INTERACTIONS[name]
    credentials = ["all", "smart", "foreign", "expired", "none", "garbage"]
    if interaction.scopes:
        credentials += [
            f"own:{interaction.method} {interaction.path}",
            f"lacking:{interaction.method} {interaction.path}",
        ]
    # Credentials of the fuzzed tenant that hold the interaction's scopes.
    may = ["all", *(c for c in credentials if c.startswith("own:"))]
    if set(interaction.scopes) <= world.smart_scopes:
        may.append("smart")
    credential = draw(_weighted((3, st.sampled_from(may)), (2, st.sampled_from(credentials))))
    path, id_kind, object_id = interaction.path, "", ""
    if interaction.kind:
        id_kind = draw(st.sampled_from(["own", "own", "own", "foreign", "unknown", "ugly"]))
        object_id = {
            "own": world.own.get(interaction.kind, ""),
            "foreign": world.foreign.get(interaction.kind, ""),
            "unknown": str(uuid.uuid4()),
        }.get(id_kind) or draw(_ugly_ids.filter(lambda text: "/" not in text and text not in ("", ".", "..")))
        path = path.replace("{id}", percent(object_id))
    query = draw(_search(world, interaction)) if interaction.method == "GET" and not interaction.kind else []
    if interaction.method == "GET" and draw(st.booleans()):
        query = [*query, ("_format", draw(st.sampled_from(["json", "xml", "application/fhir+json", "\x00"])))]
    body = draw(_body(world, interaction, object_id)) if interaction.method in ("POST", "PUT") else b""
    return Call(
        credential=credential,
        base=draw(st.sampled_from(BASES)),
        path=path,
        id_kind=id_kind,
        query=query,
        body=body,
        content_type=draw(_weighted((4, _readable_types), (1, _other_types))),
        accept=draw(_accepts),
        # One update in ten (hypothesis would otherwise favour the boundary value, and most updates
        # would stop at the 412).
        if_match=interaction.method == "PUT" and draw(st.sampled_from([False] * 9 + [True])),
    )


garbage_tokens = st.one_of(
    st.sampled_from(
        ["Bearer", "Bearer ", "Bearer hm_", "Bearer hm_000000000000_wrong", "Basic dXNlcjpwYXNz", "hm_x"]
    ),
    st.text(string.printable.strip() + " ", max_size=60).map(lambda text: f"Bearer {text}"),
)

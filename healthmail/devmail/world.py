"""The dev mail world's layout: the CA, the receivers and the DNS zone file that points at them.

    world = mail_world(state_dir, ports)      # CA + certificates (made once), receiver specs
    zone_write(world.zone_file, world)        # MX/A records of the patient domains
    zone_publish_txt(world.zone_file, {...})  # a sender domain's SPF/DKIM/DMARC (seed_demo --publish-dns)

Patient domains (contacts/synthetic.py uses both): `patients.test` is served by the verified-TLS
receiver, `example.org` by the receiver without STARTTLS, `badcert.test` by the one whose certificate
no CA signed. The demo sender domain's MTA-STS policy is served over HTTPS (a dev-CA certificate for
`mta-sts.<domain>`) by the `mta-sts` spec; the zone's "https" table tells the policy fetcher its port,
and the domain's MX is the system receiver (the host the policy names).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ca import CertificateAuthority, write_private
from .receivers import ReceiverSpec

PATIENT_DOMAINS = {"tls": "patients.test", "plain": "example.org", "badcert": "badcert.test"}
SYSTEM_HOST = "mail.dev.healthmail.test"
DEMO_SENDER_DOMAIN = "mail.demo-health.test"  # the seeded demo tenant's sender domain (demo/story.py)
POLICY_HOST = f"mta-sts.{DEMO_SENDER_DOMAIN}"


def mta_sts_policy_text() -> str:
    """The demo sender domain's policy (RFC 8461 3.2): its MX is the system receiver."""
    return f"version: STSv1\r\nmode: testing\r\nmx: {SYSTEM_HOST}\r\nmax_age: 86400\r\n"


@dataclass(frozen=True)
class MailWorld:
    ca_file: str
    zone_file: str
    maildir: str
    receivers: tuple[ReceiverSpec, ...]

    def receiver(self, kind: str) -> ReceiverSpec:
        return next(spec for spec in self.receivers if spec.kind == kind)

    def config(self) -> str:
        return json.dumps({"maildir": self.maildir, "receivers": [r.as_dict() for r in self.receivers]})

    @staticmethod
    def receivers_from_config(text: str) -> tuple[Path, list[ReceiverSpec]]:
        data = json.loads(text)
        return Path(data["maildir"]), [ReceiverSpec(**r) for r in data["receivers"]]


def mail_world(state: Path, ports: dict[str, int]) -> MailWorld:
    """The CA (kept in state/ca, files mode 0600) and one receiver per kind in `ports`
    (tls, plain, badcert, system) and the MTA-STS policy server (mta-sts)."""
    ca = CertificateAuthority.persistent(state / "ca")
    specs = []
    for kind, port in ports.items():
        if kind in ("system", "plain"):  # no STARTTLS offered
            specs.append(ReceiverSpec(kind, SYSTEM_HOST if kind == "system" else "mx.example.org", port))
            continue
        host = POLICY_HOST if kind == "mta-sts" else f"mx.{PATIENT_DOMAINS[kind]}"
        cert, key = ca.directory / f"{host}.crt", ca.directory / f"{host}.key"
        ca_made = (ca.directory / "ca.crt").stat().st_mtime
        if not (cert.exists() and key.exists()) or cert.stat().st_mtime < ca_made:
            ca.issue(host, self_signed=kind == "badcert")  # a new CA re-issues its certificates
        specs.append(ReceiverSpec(kind, host, port, str(cert), str(key)))
    return MailWorld(ca.ca_file, str(state / "dns-zone.json"), str(state / "mail"), tuple(specs))


def _zone_read(path: Path) -> dict[str, Any]:
    try:
        zone: dict[str, Any] = json.loads(path.read_text())
        return zone
    except (OSError, ValueError):
        return {}


def _zone_update(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Read-change-write under a lock (seed_demo and the devstack may both write)."""
    path = Path(path)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        zone = _zone_read(path)
        change(zone)
        temporary = path.with_suffix(".tmp")
        write_private(temporary, json.dumps(zone, indent=2, sort_keys=True).encode())
        os.replace(temporary, path)


def zone_write(path: Path | str, world: MailWorld) -> None:
    """MX and A records: each patient domain's MX is its receiver on loopback, the MTA-STS policy host's
    HTTPS port (TXT records kept)."""

    def change(zone: dict[str, Any]) -> None:
        zone["mx"] = {}
        zone["a"] = {}
        zone.pop("https", None)
        for spec in world.receivers:
            if spec.kind in PATIENT_DOMAINS:
                zone["mx"][PATIENT_DOMAINS[spec.kind]] = [
                    {"preference": 10, "host": spec.hostname, "port": spec.port}
                ]
                zone["a"][spec.hostname] = ["127.0.0.1"]
            elif spec.kind == "system":  # the demo sender domain's own mail (its MTA-STS policy's mx)
                mx = {"preference": 10, "host": spec.hostname, "port": spec.port}
                zone["mx"][DEMO_SENDER_DOMAIN] = [mx]
                zone["a"][spec.hostname] = ["127.0.0.1"]
            elif spec.kind == "mta-sts":
                zone["a"][spec.hostname] = ["127.0.0.1"]
                zone["https"] = {spec.hostname: {"address": "127.0.0.1", "port": spec.port}}
        zone.setdefault("txt", {})

    _zone_update(Path(path), change)


def zone_publish_txt(path: Path | str, records: dict[str, list[str]]) -> None:
    """Publish TXT records (name -> texts), replacing what those names had."""

    def change(zone: dict[str, Any]) -> None:
        zone.setdefault("txt", {}).update(
            {name.rstrip(".").lower(): texts for name, texts in records.items()}
        )

    _zone_update(Path(path), change)

"""epochs: what the scheduled epoch rotation costs as a tenant's contacts grow.

Every live object key (one per contact, plus message bodies, uploads, exports) is unwrapped and
re-wrapped under the new epoch key each time the epoch rotates (daily by default), so the work is
linear in the keys the tenant holds. For each size the tenant gets that many per-row keys (made as
contacts make them: rowkeys.row_keys_create) and `epochs_rotate` runs once; measured are its wall
time and this process's CPU time (Python and AES-GCM; PostgreSQL's share is wall minus CPU, on a
shared machine roughly). Baseline in the same run: bare AES-GCM unwrap + wrap of as many keys, the
floor of the cryptographic part. `per_million_seconds` extrapolates the largest size linearly.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
import uuid


def _tenant():
    from healthmail.tenants.models import Tenant

    return Tenant.objects.create(
        name="Bench epochs", slug=f"bench-epochs-{uuid.uuid4().hex[:8]}", postal_address="1 Bench Way"
    )


def _aes_baseline(count: int) -> float:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    old, new, aad = AESGCM(AESGCM.generate_key(256)), AESGCM(AESGCM.generate_key(256)), b"aad"
    wrapped = []
    for _ in range(count):
        nonce = secrets.token_bytes(12)
        wrapped.append(nonce + old.encrypt(nonce, secrets.token_bytes(32), aad))
    started = time.process_time()
    for blob in wrapped:
        key = old.decrypt(blob[:12], blob[12:], aad)
        nonce = secrets.token_bytes(12)
        new.encrypt(nonce, key, aad)
    return time.process_time() - started


def _one_size(count: int) -> dict:
    from healthmail.crypto import rowkeys
    from healthmail.crypto.objects import epochs_rotate

    tenant = _tenant()
    for start in range(0, count, 5000):
        rowkeys.row_keys_create(tenant.pk, min(5000, count - start))
    wall, cpu = time.perf_counter(), time.process_time()
    result = epochs_rotate(tenant.pk)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if result.rewrapped != count or result.damaged:
        raise RuntimeError(f"re-wrapped {result.rewrapped} of {count} keys, {len(result.damaged)} damaged")
    return {
        "keys": count,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "aes_baseline_cpu_seconds": round(_aes_baseline(count), 3),
        "wall_us_per_key": round(wall / count * 1e6, 1),
        "cpu_us_per_key": round(cpu / count * 1e6, 1),
    }


def run(size: str) -> tuple[dict, dict]:
    from django.conf import settings

    settings.HEALTHMAIL_KEYSTORE_DIR = tempfile.mkdtemp(prefix="bench-keystore-")
    sizes = (2_000, 8_000, 32_000) if size == "small" else (10_000, 100_000, 400_000)
    runs = [_one_size(count) for count in sizes]
    largest = runs[-1]
    metrics = {
        "runs": runs,
        "per_million_wall_seconds": round(largest["wall_seconds"] / largest["keys"] * 1e6),
        "per_million_cpu_seconds": round(largest["cpu_seconds"] / largest["keys"] * 1e6),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    goal = {"per_million_wall_seconds": "<= 3600 (a daily rotation well inside its epoch; choice)"}
    return metrics, goal

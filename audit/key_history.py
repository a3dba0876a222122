"""The published history of every key that signed an audit checkpoint: append-only, kept beside the
checkpoints (settings.AUDIT_CHECKPOINT_DIR, `signing-keys.jsonl`).

One line per key: `key_id`, `scope` ("platform" for a key derived from a master key, else the
tenant's id), `public_key` (hex) and when it was added. Checkpoints are checked with the key
published here, so removing a secret (the old master key after a rotation) never makes a checkpoint
unverifiable, and never hides the rows it vouches for. The first line naming a key id wins: a later
line cannot replace a published key.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.utils import timezone

FILE_NAME = "signing-keys.jsonl"
PLATFORM = "platform"

History = dict[str, dict]


def history_path() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_DIR) / FILE_NAME


def history_read() -> History:
    """key id → its first published line (lines that are not JSON objects with a key are skipped)."""
    path = history_path()
    found: History = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("key_id"), str):
            found.setdefault(entry["key_id"], entry)
    return found


def key_publish(*, key_id: str, scope: str, public_key: str, history: History | None = None) -> None:
    """Append the key unless its id is already published."""
    if key_id in (history if history is not None else history_read()):
        return
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "key_id": key_id,
        "scope": scope,
        "public_key": public_key,
        "added_at": timezone.now().isoformat(),
    }
    with path.open("a") as handle:
        handle.write(json.dumps(line, sort_keys=True) + "\n")


def published_key(history: History, key_id: str | None, chain: str) -> str | None:
    """The public key published for `key_id`, when it may sign checkpoints of `chain` (a platform
    key may: tenant checkpoints made before tenants had keys were signed with one)."""
    entry = history.get(key_id or "")
    if entry is None or entry.get("scope") not in (PLATFORM, chain):
        return None
    return str(entry.get("public_key") or "") or None

"""Key IDs and alias names for shell completion.

A TAB press needs candidates within milliseconds, so this reads the index
columns alone, not the verified documents, and is no KMS operation: no record,
no due work, and none of the service layer to import. It answers only for an
unlocked keyring (kmsctl.cli.complete unlocks with a session, never a
passphrase): a locked keyring names nothing.
"""

from __future__ import annotations

from kmsctl.errors import AccessDeniedException
from kmsctl.keyring.keyring import Keyring


def key_names(keyring: Keyring, prefix: str, *, keys: bool, limit: int) -> list[tuple[str, str]]:
    """(name, description) pairs starting with ``prefix``, at most ``limit`` of
    each kind: alias names first ("-> KEY_ID"), then, unless ``keys`` is false
    or ``prefix`` starts with alias/, key IDs ("SPEC STATE") in creation order."""
    if not keyring.unlocked:
        raise AccessDeniedException("the keyring is locked")
    db, n = keyring.db, len(prefix)
    out = [
        (name, f"-> {key_id}")
        for name, key_id in db.query(
            "SELECT name, key_id FROM aliases WHERE substr(name, 1, ?) = ? ORDER BY name LIMIT ?", (n, prefix, limit)
        )
    ]
    if keys and not prefix.startswith("alias/"):
        out += [
            (key_id, f"{spec} {state}")
            for key_id, spec, state in db.query(
                "SELECT key_id, key_spec, key_state FROM keys WHERE substr(key_id, 1, ?) = ? ORDER BY seq LIMIT ?",
                (n, prefix, limit),
            )
        ]
    return out

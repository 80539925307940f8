"""Canonical JSON, the one encoding of every document kmsctl MACs or binds:
keyring records and headers, audit records, a sealed file's header. Keys
sorted, no whitespace, UTF-8 as it is (no \\u escapes), so that the bytes
authenticated are the bytes stored and any reader can recompute them."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    return _encode(obj).encode("utf-8")


# json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) without making
# its encoder anew for every call (a served request encodes several documents)
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode

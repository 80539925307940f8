"""The symmetric ciphertext blob (docs/FORMAT.md section 3) and the canonical
encryption-context encoding that is bound to it as associated data.

    offset  size  field
    0       1     marker 0xA9 (not ASCII, so a raw blob never looks like base64)
    1       1     version 0x01
    2       16    key ID (the UUID's 16 bytes)
    18      32    key material ID (KeyMaterialId as bytes)
    50      12    AES-GCM nonce
    62      n+16  AES-256-GCM ciphertext and tag

AAD = bytes 0..49 (the header) || canonical(EncryptionContext).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from kmsctl.crypto import primitives

MARKER = 0xA9
VERSION = 1
HEADER_SIZE = 50
OVERHEAD = HEADER_SIZE + primitives.GCM_NONCE_SIZE + primitives.GCM_TAG_SIZE


class MalformedBlob(Exception):
    """Not a kmsctl symmetric ciphertext blob (wrong marker, version or size)."""


@dataclass(frozen=True)
class Blob:
    key_id: str
    material_id: str
    header: bytes
    nonce: bytes
    sealed: bytes


def canonical_context(context: dict[str, str] | None) -> bytes:
    """Unambiguous encoding: count, then each pair sorted by UTF-8 key, every
    string prefixed by its 4-byte big-endian length. ``None`` == ``{}``."""
    items = sorted((k.encode(), v.encode()) for k, v in (context or {}).items())
    out = [struct.pack(">I", len(items))]
    for k, v in items:
        out.append(struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def header(key_id: str, material_id: str) -> bytes:
    return bytes((MARKER, VERSION)) + uuid.UUID(key_id).bytes + bytes.fromhex(material_id)


def seal(key: bytes, key_id: str, material_id: str, plaintext: bytes, context: dict[str, str] | None) -> bytes:
    head = header(key_id, material_id)
    nonce, sealed = primitives.gcm_seal(key, plaintext, head + canonical_context(context))
    return head + nonce + sealed


def parse(data: bytes) -> Blob:
    if len(data) < OVERHEAD or data[0] != MARKER:
        raise MalformedBlob("not a kmsctl ciphertext blob")
    if data[1] != VERSION:
        raise MalformedBlob(f"unsupported ciphertext blob version {data[1]}")
    head = data[:HEADER_SIZE]
    return Blob(
        key_id=str(uuid.UUID(bytes=data[2:18])),
        material_id=data[18:50].hex(),
        header=head,
        nonce=data[50:62],
        sealed=data[62:],
    )


def open_blob(key: bytes, blob: Blob, context: dict[str, str] | None) -> bytes:
    """Raises ``primitives.AuthenticationFailed`` on any tampering or context mismatch."""
    return primitives.gcm_open(key, blob.nonce, blob.sealed, blob.header + canonical_context(context))


def looks_like_blob(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == MARKER

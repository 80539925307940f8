"""The symmetric ciphertext blob (docs/FORMAT.md section 3) and the canonical
encryption-context encoding that is bound to it as associated data.

Version 2, written since kmsctl derives a fresh AES key per blob:

    offset  size  field
    0       1     marker 0xA9 (not ASCII, so a raw blob never looks like base64)
    1       1     version 0x02
    2       16    key ID (the UUID's 16 bytes)
    18      32    key material ID (KeyMaterialId as bytes)
    50      32    salt, random per blob
    82      12    AES-GCM nonce, random per blob
    94      n+16  AES-256-GCM ciphertext and tag

    blob key = HKDF-SHA256(IKM = material secret, salt, info = "kmsctl blob v2")
    AAD      = bytes 0..81 (the header) || canonical(EncryptionContext)

Version 1 (still read, no longer written) has no salt: the material secret is
the AES key, the header is bytes 0..49 and the nonce follows it.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from kmsctl.crypto import primitives

MARKER = 0xA9
VERSION = 2  # what seal() writes
V1_HEADER_SIZE = 50
SALT_SIZE = 32
HEADER_SIZE = V1_HEADER_SIZE + SALT_SIZE
_TAIL = primitives.GCM_NONCE_SIZE + primitives.GCM_TAG_SIZE
OVERHEAD = HEADER_SIZE + _TAIL  # 110 bytes around the plaintext
V1_OVERHEAD = V1_HEADER_SIZE + _TAIL  # 78
_HEADER_SIZES = {1: V1_HEADER_SIZE, 2: HEADER_SIZE}
KDF_INFO = b"kmsctl blob v2"


class MalformedBlob(Exception):
    """Not a kmsctl symmetric ciphertext blob (wrong marker, version or size)."""


@dataclass(frozen=True)
class Blob:
    key_id: str
    material_id: str
    header: bytes
    nonce: bytes
    sealed: bytes
    version: int = VERSION
    salt: bytes = b""  # version 2 only


def canonical_context(context: dict[str, str] | None) -> bytes:
    """Unambiguous encoding: count, then each pair sorted by UTF-8 key, every
    string prefixed by its 4-byte big-endian length. ``None`` == ``{}``."""
    items = sorted((k.encode(), v.encode()) for k, v in (context or {}).items())
    out = [struct.pack(">I", len(items))]
    for k, v in items:
        out.append(struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def header(key_id: str, material_id: str, salt: bytes) -> bytes:
    return bytes((MARKER, VERSION)) + uuid.UUID(key_id).bytes + bytes.fromhex(material_id) + salt


def blob_key(material: bytes, salt: bytes) -> bytes:
    """The AES-256 key of one version 2 blob."""
    return primitives.hkdf(material, salt, KDF_INFO)


def seal(key: bytes, key_id: str, material_id: str, plaintext: bytes, context: dict[str, str] | None) -> bytes:
    """A version 2 blob of ``plaintext`` under the material secret ``key``."""
    salt = primitives.random_bytes(SALT_SIZE)
    head = header(key_id, material_id, salt)
    nonce, sealed = primitives.gcm_seal(blob_key(key, salt), plaintext, head + canonical_context(context))
    return head + nonce + sealed


def parse(data: bytes) -> Blob:
    if len(data) < 2 or data[0] != MARKER:
        raise MalformedBlob("not a kmsctl ciphertext blob")
    version = data[1]
    size = _HEADER_SIZES.get(version)
    if size is None:
        raise MalformedBlob(f"unsupported ciphertext blob version {version}")
    if len(data) < size + _TAIL:
        raise MalformedBlob("not a kmsctl ciphertext blob")
    return Blob(
        key_id=str(uuid.UUID(bytes=data[2:18])),
        material_id=data[18:50].hex(),
        header=data[:size],
        nonce=data[size : size + primitives.GCM_NONCE_SIZE],
        sealed=data[size + primitives.GCM_NONCE_SIZE :],
        version=version,
        salt=data[V1_HEADER_SIZE:size],
    )


def open_blob(key: bytes, blob: Blob, context: dict[str, str] | None) -> bytes:
    """Raises ``primitives.AuthenticationFailed`` on any tampering or context mismatch."""
    aes_key = blob_key(key, blob.salt) if blob.version == 2 else key
    return primitives.gcm_open(aes_key, blob.nonce, blob.sealed, blob.header + canonical_context(context))


def looks_like_blob(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == MARKER

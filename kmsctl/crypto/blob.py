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

Version 3, written by keys of a custom key store, whose AES key lives in a
PKCS#11 token and never leaves it (no derivation is possible outside it):

    offset  size  field
    0       1     marker 0xA9
    1       1     version 0x03
    2       16    key ID
    18      32    token key ID (the token object's CKA_ID, shown as KeyMaterialId)
    50      21    custom key store ID, ASCII ("cks-" and 17 hex digits)
    71      12    AES-GCM nonce, random per blob
    83      n+16  AES-256-GCM ciphertext and tag, computed by the token

    AAD = bytes 0..70 (the header) || canonical(EncryptionContext)
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Callable
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
STORE_VERSION = 3  # what seal_in_store() writes
STORE_ID_SIZE = 21  # "cks-" and 17 hex digits
V3_HEADER_SIZE = V1_HEADER_SIZE + STORE_ID_SIZE
V3_OVERHEAD = V3_HEADER_SIZE + _TAIL  # 99
_HEADER_SIZES = {1: V1_HEADER_SIZE, 2: HEADER_SIZE, 3: V3_HEADER_SIZE}
KDF_INFO = b"kmsctl blob v2"
_STORE_ID_RE = re.compile(r"cks-[0-9a-f]{17}")
# (nonce, plaintext or ciphertext||tag, aad) -> the other: AES-GCM done elsewhere (the token)
GcmFunction = Callable[[bytes, bytes, bytes], bytes]


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
    store_id: str = ""  # version 3 only: the custom key store that holds the key


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


def store_header(key_id: str, token_key_id: str, store_id: str) -> bytes:
    raw = store_id.encode("ascii")
    if len(raw) != STORE_ID_SIZE:
        raise ValueError(f"a custom key store ID is {STORE_ID_SIZE} characters")
    return bytes((MARKER, STORE_VERSION)) + uuid.UUID(key_id).bytes + bytes.fromhex(token_key_id) + raw


def seal_in_store(
    encrypt: GcmFunction,
    key_id: str,
    token_key_id: str,
    store_id: str,
    plaintext: bytes,
    context: dict[str, str] | None,
    nonce: bytes | None = None,
) -> bytes:
    """A version 3 blob: ``encrypt(nonce, plaintext, aad)`` is AES-256-GCM by
    the token key ``token_key_id`` (ciphertext and 16-byte tag)."""
    head = store_header(key_id, token_key_id, store_id)
    nonce = nonce or primitives.random_bytes(primitives.GCM_NONCE_SIZE)
    return head + nonce + encrypt(nonce, plaintext, head + canonical_context(context))


def open_in_store(decrypt: GcmFunction, blob: Blob, context: dict[str, str] | None) -> bytes:
    """A version 3 blob's plaintext: ``decrypt(nonce, ciphertext||tag, aad)``
    raises ``primitives.AuthenticationFailed`` on a wrong tag."""
    return decrypt(blob.nonce, blob.sealed, blob.header + canonical_context(context))


def parse(data: bytes) -> Blob:
    if len(data) < 2 or data[0] != MARKER:
        raise MalformedBlob("not a kmsctl ciphertext blob")
    version = data[1]
    size = _HEADER_SIZES.get(version)
    if size is None:
        raise MalformedBlob(f"unsupported ciphertext blob version {version}")
    if len(data) < size + _TAIL:
        raise MalformedBlob("not a kmsctl ciphertext blob")
    store_id = ""
    if version == STORE_VERSION:
        store_id = data[V1_HEADER_SIZE:size].decode("latin-1")
        if not _STORE_ID_RE.fullmatch(store_id):
            raise MalformedBlob("not a kmsctl ciphertext blob (a damaged custom key store ID)")
    return Blob(
        key_id=str(uuid.UUID(bytes=data[2:18])),
        material_id=data[18:50].hex(),
        header=data[:size],
        nonce=data[size : size + primitives.GCM_NONCE_SIZE],
        sealed=data[size + primitives.GCM_NONCE_SIZE :],
        version=version,
        salt=data[V1_HEADER_SIZE:size] if version == 2 else b"",
        store_id=store_id,
    )


def open_blob(key: bytes, blob: Blob, context: dict[str, str] | None) -> bytes:
    """Raises ``primitives.AuthenticationFailed`` on any tampering or context mismatch."""
    if blob.version == STORE_VERSION:
        raise MalformedBlob("a custom key store's blob is opened by its token (open_in_store)")
    aes_key = blob_key(key, blob.salt) if blob.version == 2 else key
    return primitives.gcm_open(aes_key, blob.nonce, blob.sealed, blob.header + canonical_context(context))


def looks_like_blob(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == MARKER

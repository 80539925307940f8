"""The keyless half of sealed files (docs/SEALED-FORMAT.md): the constants,
the preamble's canonical JSON header, parsing it, and sizes. No cryptography
here, so ``inspect`` reads a header without loading any; ``kmsctl.crypto.sealed``
adds the keys, the writer and the authenticating reader, and re-exports this."""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from kmsctl import errors as E
from kmsctl.canonical import canonical_json as canonical_json  # also this module's: sealed.py takes it from here

MAGIC = b"\x89KMSSEAL"
VERSION = 1
ALGORITHM = "AES_256_GCM_HKDF_SHA256_COMMIT_STREAM"
CHUNK_SIZE = 65536  # as age: large enough that per-chunk overhead vanishes, small enough to stream
CHUNK_SIZE_MAX = 1 << 20  # two blocks of look-ahead stay far below the 64 MiB memory budget
HEADER_MAX = 65536
DATA_KEY_SIZE = 32
SALT_SIZE = 32
TAG_SIZE = 16
COMMITMENT_SIZE = MAC_SIZE = 32
FIXED_SIZE = len(MAGIC) + 1 + 4  # magic, version, header length
EDK_MAX = 6144  # the largest ciphertext blob KMS returns
_FIELDS = {"Algorithm", "ChunkSize", "EncryptedDataKey", "EncryptionContext", "KeyId", "Salt"}


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


class Writable(Protocol):
    def write(self, data: memoryview, /) -> int | None: ...


def header_error(detail: str | None = None) -> E.InvalidCiphertextException:
    return E.InvalidCiphertextException("sealed file header fails authentication" + (f": {detail}" if detail else ""))


def chunk_error(message: str) -> E.InvalidCiphertextException:
    return E.InvalidCiphertextException(message)


@dataclass(frozen=True)
class Header:
    key_id: str
    context: dict[str, str]
    encrypted_data_key: bytes
    algorithm: str
    chunk_size: int
    salt: bytes
    preamble: bytes  # magic through the header JSON
    commitment: bytes
    mac: bytes

    @property
    def size(self) -> int:
        """Bytes before the body (inspect's HeaderSize)."""
        return len(self.preamble) + COMMITMENT_SIZE + MAC_SIZE


# ----- encoding -----
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, name: str) -> bytes:
    if not isinstance(text, str):
        raise header_error(f"{name} is not a string")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise header_error(f"{name} is not base64") from None
    if b64(data) != text:
        raise header_error(f"{name} is not canonical base64")
    return data


# ----- stream helpers -----
def read_full(src: Readable, view: memoryview) -> int:
    """Fill ``view`` unless the input ends first (pipes return short reads)."""
    n = src.readinto(view) or 0
    return fill(src, view, n) if 0 < n < len(view) else n


def fill(src: Readable, view: memoryview, got: int) -> int:
    """Go on filling ``view`` after a short read of ``got`` bytes; stops at the
    first empty read, so a terminal is not asked twice for its end."""
    while got < len(view):
        n = src.readinto(view[got:]) or 0
        if not n:
            break
        got += n
    return got


def write_all(dst: Writable, data: memoryview) -> None:
    """Unbuffered files may write less than asked; buffered ones return None or all."""
    n = dst.write(data)
    while n is not None and n < len(data):
        data = data[n:]
        n = dst.write(data)


def read_exact(src: Readable, size: int) -> bytes:
    buf = bytearray(size)
    return bytes(buf[: read_full(src, memoryview(buf))])


# ----- reading, without a key -----
def _not_sealed(head: bytes) -> E.ValidationException:
    hint = None
    if head[:1] == b"\xa9":
        hint = "this looks like a ciphertext blob: use kmsctl decrypt"
    elif head.startswith(b"iUtNU1NFQU"):
        hint = "this is base64 text of a sealed file: decode it first (base64 -d)"
    return E.ValidationException("not a kmsctl sealed file", hint=hint)


def read_header(src: Readable) -> Header:
    """Read and parse the preamble, and nothing more. Authenticates nothing:
    fields are only as trustworthy as ``Opener`` later proves them."""
    fixed = read_exact(src, FIXED_SIZE)
    if fixed[:8] != MAGIC:
        raise _not_sealed(fixed)
    if len(fixed) > 8 and fixed[8] != VERSION:
        raise E.ValidationException(f"unsupported sealed file version {fixed[8]}")
    if len(fixed) < FIXED_SIZE:
        raise header_error("the input ends inside the header")
    (length,) = struct.unpack(">I", fixed[9:13])
    if not 1 <= length <= HEADER_MAX:
        raise header_error(f"header length {length} is out of range")
    rest = read_exact(src, length + COMMITMENT_SIZE + MAC_SIZE)
    if len(rest) < length + COMMITMENT_SIZE + MAC_SIZE:
        raise header_error("the input ends inside the header")
    raw = rest[:length]
    fields = _parse_fields(raw)
    return Header(
        key_id=fields["KeyId"],
        context=fields["EncryptionContext"],
        encrypted_data_key=unb64(fields["EncryptedDataKey"], "EncryptedDataKey"),
        algorithm=fields["Algorithm"],
        chunk_size=fields["ChunkSize"],
        salt=unb64(fields["Salt"], "Salt"),
        preamble=fixed + raw,
        commitment=rest[length : length + COMMITMENT_SIZE],
        mac=rest[length + COMMITMENT_SIZE :],
    )


def _parse_fields(raw: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise header_error("the header is not JSON") from None
    if not isinstance(fields, dict) or set(fields) != _FIELDS:
        raise header_error(f"the header must have exactly the members {', '.join(sorted(_FIELDS))}")
    try:
        canonical = canonical_json(fields)
    except UnicodeEncodeError:
        canonical = b""
    if canonical != raw:
        raise header_error("the header is not canonical JSON")
    key_id, context, size = fields["KeyId"], fields["EncryptionContext"], fields["ChunkSize"]
    if not isinstance(key_id, str) or not key_id:
        raise header_error("KeyId is not a non-empty string")
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise header_error("EncryptionContext does not map strings to strings")
    if fields["Algorithm"] != ALGORITHM:
        raise header_error(f"Algorithm is not {ALGORITHM}")
    if type(size) is not int or not 1 <= size <= CHUNK_SIZE_MAX:
        raise header_error(f"ChunkSize is not an integer from 1 to {CHUNK_SIZE_MAX}")
    if not 1 <= len(unb64(fields["EncryptedDataKey"], "EncryptedDataKey")) <= EDK_MAX:
        raise header_error(f"EncryptedDataKey is not 1 to {EDK_MAX} bytes")
    if len(unb64(fields["Salt"], "Salt")) != SALT_SIZE:
        raise header_error(f"Salt is not {SALT_SIZE} bytes")
    return fields


# ----- sizes without a key (inspect) -----
def plaintext_size(header: Header, body_length: int) -> int:
    """The plaintext size a body of ``body_length`` bytes holds (section 4)."""
    block = header.chunk_size + TAG_SIZE
    if body_length <= 0:
        raise chunk_error("sealed file is truncated after the header")
    chunks = -(-body_length // block)
    last = body_length - (chunks - 1) * block
    if last < TAG_SIZE or (last == TAG_SIZE and chunks > 1):
        raise chunk_error(
            f"sealed file body length {body_length} is impossible with ChunkSize {header.chunk_size}: "
            "it is truncated or has trailing data"
        )
    return body_length - chunks * TAG_SIZE


def count_bytes(src: Readable) -> int:
    """Read ``src`` to its end; returns how many bytes there were."""
    buf = memoryview(bytearray(1 << 20))
    total = 0
    while n := src.readinto(buf) or 0:
        total += n
    return total

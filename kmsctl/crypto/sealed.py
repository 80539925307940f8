"""Sealed files (docs/SEALED-FORMAT.md): envelope encryption of data of any
size, streamed through file objects in constant memory.

    magic "\\x89KMSSEAL" | version 0x01 | u32 H | header (canonical JSON, H bytes)
    | commitment (32) | HMAC-SHA256 over all of that (32) | STREAM body

The KMS part (GenerateDataKey, Decrypt) is the caller's: this module sees only
the plaintext data key and the opaque encrypted copy it stores in the header.
``write_sealed`` takes the salt so that test vectors are reproducible; ``seal``
is what the CLI calls, with a random one.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from kmsctl import errors as E
from kmsctl.crypto import primitives as P
from kmsctl.crypto.sealed_header import (
    ALGORITHM,
    CHUNK_SIZE,
    CHUNK_SIZE_MAX,
    COMMITMENT_SIZE,
    DATA_KEY_SIZE,
    EDK_MAX,
    FIXED_SIZE,
    HEADER_MAX,
    MAC_SIZE,
    MAGIC,
    SALT_SIZE,
    TAG_SIZE,
    VERSION,
    Header,
    Readable,
    Writable,
    b64,
    canonical_json,
    chunk_error,
    count_bytes,
    fill,
    header_error,
    plaintext_size,
    read_exact,
    read_full,
    read_header,
    write_all,
)

__all__ = [
    "ALGORITHM", "BATCH_BYTES", "CHUNK_SIZE", "CHUNK_SIZE_MAX", "COMMITMENT_SIZE", "DATA_KEY_SIZE", "EDK_MAX",
    "FIXED_SIZE", "HEADER_MAX", "MAC_SIZE", "MAGIC", "MAX_CHUNKS", "SALT_SIZE", "TAG_SIZE", "TRAILING_SEARCH",
    "VERSION", "Header", "Opener", "Progress", "Readable", "Writable", "build_preamble", "canonical_json",
    "count_bytes", "derive_keys", "header_error", "nonce", "plaintext_size", "read_header", "seal", "unseal",
    "write_sealed",
]  # fmt: skip

MAX_CHUNKS = 1 << 88  # the nonce's 11-byte counter
TRAILING_SEARCH = 4096  # how far back a failed last chunk is re-tried to name "trailing data"
BATCH_BYTES = 1 << 20  # output is written in batches of about this size
_INFO = b"kmsctl sealed v1 "

Progress = Callable[[int], None]


def derive_keys(data_key: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    """(payload key, header key, commitment): full HKDF-SHA256 (extract and expand) of the data key."""
    return (
        P.hkdf(data_key, salt, _INFO + b"payload"),
        P.hkdf(data_key, salt, _INFO + b"header"),
        P.hkdf(data_key, salt, _INFO + b"commit"),
    )


def nonce(index: int, last: bool) -> bytes:
    return (index << 8 | last).to_bytes(12, "big")


def build_preamble(
    *,
    key_id: str,
    context: dict[str, str],
    encrypted_data_key: bytes,
    data_key: bytes,
    salt: bytes,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[bytes, bytes]:
    """-> (everything before the body, payload key)."""
    if len(data_key) != DATA_KEY_SIZE or len(salt) != SALT_SIZE:
        raise E.ValidationException(f"a sealed file needs a {DATA_KEY_SIZE}-byte data key and a {SALT_SIZE}-byte salt")
    if not 1 <= chunk_size <= CHUNK_SIZE_MAX:
        raise E.ValidationException(f"ChunkSize must be between 1 and {CHUNK_SIZE_MAX}")
    if not 1 <= len(encrypted_data_key) <= EDK_MAX:
        raise E.ValidationException(f"the encrypted data key must be 1 to {EDK_MAX} bytes")
    fields = {
        "Algorithm": ALGORITHM,
        "ChunkSize": chunk_size,
        "EncryptedDataKey": b64(encrypted_data_key),
        "EncryptionContext": dict(context),
        "KeyId": key_id,
        "Salt": b64(salt),
    }
    try:
        header = canonical_json(fields)
    except UnicodeEncodeError:
        raise E.ValidationException("the encryption context and key ID must be valid Unicode text") from None
    if len(header) > HEADER_MAX:
        raise E.ValidationException(f"the sealed file header would be {len(header)} bytes; at most {HEADER_MAX}")
    payload_key, header_key, commitment = derive_keys(data_key, salt)
    signed = MAGIC + bytes((VERSION,)) + struct.pack(">I", len(header)) + header + commitment
    return signed + P.hmac_sha256(header_key, signed), payload_key


# ----- writing -----
def write_sealed(
    src: Readable,
    dst: Writable,
    *,
    key_id: str,
    context: dict[str, str],
    encrypted_data_key: bytes,
    data_key: bytes,
    salt: bytes,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
) -> int:
    """Seal all of ``src`` into ``dst``; returns the plaintext size. Deterministic
    given ``data_key`` and ``salt``: only tests and vectors pass them in."""
    preamble, payload_key = build_preamble(
        key_id=key_id,
        context=context,
        encrypted_data_key=encrypted_data_key,
        data_key=data_key,
        salt=salt,
        chunk_size=chunk_size,
    )
    write_all(dst, memoryview(preamble))
    encrypt_into = P.Gcm(payload_key).encrypt_into  # one key schedule for the whole file
    readinto = src.readinto
    block = chunk_size + TAG_SIZE
    cur = memoryview(bytearray(chunk_size))
    nxt = memoryview(bytearray(chunk_size))
    batch = _batch_chunks(block)
    out = memoryview(bytearray(batch * block))
    max_chunks = MAX_CHUNKS
    index = pending = 0
    n = read_full(src, cur)
    # the hot loop: full chunks with more input after them (flag 0). A full
    # chunk is the last one only if nothing follows it, hence the read-ahead.
    while n == chunk_size:
        m = readinto(nxt) or 0
        if 0 < m < chunk_size:
            m = fill(src, nxt, m)
        if not m:
            break
        if index >= max_chunks:
            raise E.ValidationException("the input is too large for one sealed file")
        at = pending * block
        encrypt_into((index << 8).to_bytes(12, "big"), cur, None, out[at : at + block])
        pending += 1
        if pending == batch:
            write_all(dst, out)
            pending = 0
            if progress is not None:
                progress(batch * chunk_size)
        cur, nxt, n = nxt, cur, m
        index += 1
    # the last chunk (flag 1): 1 .. chunk_size bytes, or 0 for an empty input
    if index >= max_chunks:
        raise E.ValidationException("the input is too large for one sealed file")
    at = pending * block
    encrypt_into(nonce(index, True), cur[:n], None, out[at : at + n + TAG_SIZE])
    write_all(dst, out[: at + n + TAG_SIZE])
    if progress is not None:
        progress(pending * chunk_size + n)
    return index * chunk_size + n


def _batch_chunks(block: int) -> int:
    """Chunks per write: one ~1 MiB write instead of one per chunk costs half
    the CPU in the kernel's page cache for 64 KiB chunks (bench/bench_seal.py)."""
    return max(1, -(-BATCH_BYTES // block))


def seal(
    src: Readable,
    dst: Writable,
    *,
    key_id: str,
    context: dict[str, str],
    encrypted_data_key: bytes,
    data_key: bytes,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
) -> int:
    return write_sealed(
        src,
        dst,
        key_id=key_id,
        context=context,
        encrypted_data_key=encrypted_data_key,
        data_key=data_key,
        salt=os.urandom(SALT_SIZE),
        chunk_size=chunk_size,
        progress=progress,
    )


# ----- reading -----
class Opener:
    """A header proven to belong to ``data_key``: the commitment and the MAC are
    checked here, before any body byte is read."""

    def __init__(self, header: Header, data_key: bytes) -> None:
        if len(data_key) != DATA_KEY_SIZE:
            raise header_error("the data key is not 32 bytes")
        payload_key, header_key, commitment = derive_keys(data_key, header.salt)
        # before anything else: GCM is not key-committing
        if not P.bytes_eq(commitment, header.commitment):
            raise header_error()
        try:
            P.hmac_sha256_verify(header_key, header.preamble + header.commitment, header.mac)
        except P.AuthenticationFailed:
            raise header_error() from None
        self.header = header
        self._aead = P.Gcm(payload_key)

    def stream(self, src: Readable, dst: Writable, progress: Progress | None = None) -> int:
        """Decrypt the body from ``src`` to ``dst``; returns the plaintext size.
        A chunk's plaintext is written only after its tag verified, the last
        one only after the end of the input was seen."""
        size = self.header.chunk_size
        block = size + TAG_SIZE
        decrypt_into = self._aead.decrypt_into
        readinto = src.readinto
        cur = memoryview(bytearray(block))
        nxt = memoryview(bytearray(block))
        batch = _batch_chunks(block)
        out = memoryview(bytearray(batch * size))
        max_chunks = MAX_CHUNKS
        index = pending = 0

        def fail(error: E.InvalidCiphertextException) -> E.InvalidCiphertextException:
            write_all(dst, out[: pending * size])  # the chunks before this one did authenticate
            return error

        n = read_full(src, cur)
        if n == 0:
            raise chunk_error("sealed file is truncated after the header")
        # the hot loop: full blocks with more input after them, opened with flag 0
        while n == block:
            m = readinto(nxt) or 0
            if 0 < m < block:
                m = fill(src, nxt, m)
            if not m:
                break
            if index >= max_chunks:
                raise fail(chunk_error(f"chunk {index} is past the last possible chunk"))
            at = pending * size
            try:
                decrypt_into((index << 8).to_bytes(12, "big"), cur, None, out[at : at + size])
            except P.AuthenticationFailed:
                raise fail(self._diagnose(index, bytes(cur), bytes(nxt[:m]), src)) from None
            pending += 1
            if pending == batch:
                write_all(dst, out)
                pending = 0
                if progress is not None:
                    progress(batch * block)
            cur, nxt, n = nxt, cur, m
            index += 1
        # the final block of the input, opened with flag 1
        if index >= max_chunks:
            raise fail(chunk_error(f"chunk {index} is past the last possible chunk"))
        at = pending * size
        try:
            if n < TAG_SIZE:
                raise P.AuthenticationFailed
            decrypt_into(nonce(index, True), cur[:n], None, out[at : at + n - TAG_SIZE])
        except P.AuthenticationFailed:
            raise fail(self._diagnose(index, bytes(cur[:n]), b"", src)) from None
        if n == TAG_SIZE and index > 0:
            raise fail(chunk_error(f"chunk {index} is an empty last chunk, which only chunk 0 may be"))
        write_all(dst, out[: at + n - TAG_SIZE])
        if progress is not None:
            progress(pending * block + n)
        return index * size + n - TAG_SIZE

    def _opens(self, index: int, last: bool, data: bytes) -> bool:
        return len(data) >= TAG_SIZE and self._aead.opens(nonce(index, last), data)

    def _diagnose(self, index: int, data: bytes, following: bytes, src: Readable) -> E.InvalidCiphertextException:
        """Block ``index`` failed; name the failure (SEALED-FORMAT.md section 5).
        Runs only on failure, so valid files pay nothing for it."""
        block = self.header.chunk_size + TAG_SIZE
        if len(data) == block and not following and self._opens(index, False, data):
            return chunk_error(f"sealed file is truncated after chunk {index}")
        if following and self._opens(index, True, data):
            return chunk_error("trailing data after the last chunk")
        if following and len(following) < block and self._opens(index + 1, True, following):
            # what follows is an authentic last chunk, so this one was altered: one
            # small decryption instead of the search below (up to 4096 of a whole block)
            return chunk_error(f"chunk {index} fails authentication")
        # a short last chunk with a few bytes appended: does a prefix open as last?
        rest = following + read_exact(src, TRAILING_SEARCH + 1) if following else b""
        data = data + rest
        if len(data) - min(len(data) - 1, block) <= TRAILING_SEARCH + 1:
            for cut in range(min(len(data) - 1, block), max(TAG_SIZE, len(data) - TRAILING_SEARCH) - 1, -1):
                if self._opens(index, True, data[:cut]):
                    return chunk_error("trailing data after the last chunk")
        return chunk_error(f"chunk {index} fails authentication")


def unseal(header: Header, data_key: bytes, src: Readable, dst: Writable, progress: Progress | None = None) -> int:
    return Opener(header, data_key).stream(src, dst, progress)

"""Generate tests/vectors/ciphertext_blob_v1.json and ciphertext_blob_v2.json.

    .venv/bin/python tests/vectors/generate.py > tests/vectors/ciphertext_blob_v1.json
    .venv/bin/python tests/vectors/generate.py 2 > tests/vectors/ciphertext_blob_v2.json

Version 2 blobs are made by ``kmsctl.crypto.blob.seal`` with the salt and the
AES-GCM nonce fixed, so the output is deterministic and tests/test_vectors.py
can check that the file is still what the code makes. kmsctl no longer writes
version 1, which it still reads: those blobs are made here from the layout,
with kmsctl's AES-GCM primitive, and the file must never change. The layouts
are specified in docs/FORMAT.md section 3; section 6 describes the files.
"""

from __future__ import annotations

import base64
import functools
import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from kmsctl.crypto import blob, primitives

KEY = bytes(range(32))
OTHER_KEY = bytes(range(32, 64))
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MATERIAL_ID = bytes(range(0xA0, 0xC0)).hex()
NONCE = bytes.fromhex("000102030405060708090a0b")

MALFORMED = "MalformedBlob"
AUTH = "AuthenticationFailed"


@contextmanager
def fixed_randomness(salt: bytes, nonce: bytes) -> Iterator[None]:
    """Make ``blob.seal`` use ``salt`` and ``nonce`` instead of random ones."""
    with (
        mock.patch.object(primitives, "gcm_seal", functools.partial(primitives.gcm_seal, nonce=nonce)),
        mock.patch.object(primitives, "random_bytes", lambda n: salt[:n]),
    ):
        yield


def seal(
    key: bytes, key_id: str, material_id: str, nonce: bytes, plaintext: bytes, context: dict[str, str] | None
) -> bytes:
    """A version 1 blob, from the layout (docs/FORMAT.md 3.1)."""
    head = bytes((blob.MARKER, 1)) + uuid.UUID(key_id).bytes + bytes.fromhex(material_id)
    nonce, sealed = primitives.gcm_seal(key, plaintext, head + blob.canonical_context(context), nonce=nonce)
    return head + nonce + sealed


def seal_v2(
    key: bytes,
    key_id: str,
    material_id: str,
    salt: bytes,
    nonce: bytes,
    plaintext: bytes,
    context: dict[str, str] | None,
) -> bytes:
    """A version 2 blob, by kmsctl's own ``blob.seal``."""
    with fixed_randomness(salt, nonce):
        return blob.seal(key, key_id, material_id, plaintext, context)


def _valid(
    name: str,
    plaintext: bytes,
    context: dict[str, str] | None,
    *,
    key: bytes = KEY,
    key_id: str = KEY_ID,
    material_id: str = MATERIAL_ID,
    nonce: bytes = NONCE,
) -> dict[str, Any]:
    return {
        "name": name,
        "key": key.hex(),
        "key_id": key_id,
        "material_id": material_id,
        "nonce": nonce.hex(),
        "context": context,
        "plaintext": plaintext.hex(),
        "blob": seal(key, key_id, material_id, nonce, plaintext, context).hex(),
    }


def valid_cases() -> list[dict[str, Any]]:
    return [
        _valid("no context (None)", b"hello", None),
        _valid("empty context {} (same AAD as None)", b"hello", {}, nonce=bytes.fromhex("ffffffffffffffffffffffff")),
        _valid("one pair", b"secret value", {"purpose": "test"}),
        _valid("pairs given unsorted", b"x", {"b": "2", "a": "1", "aa": ""}),
        _valid("non-ASCII keys and values", "p\u00e4ssw\u00f6rd".encode(), {"\u00e9": "\u00fc", "z": "\U0001f600"}),
        _valid("empty plaintext (the format allows it; Encrypt does not)", b"", None),
        _valid("4096-byte plaintext (the Encrypt maximum)", bytes(range(256)) * 16, {"k": "v"}),
        _valid(
            "another key, key ID and material ID",
            bytes(32),
            {"Department": "10-23", "Project": "alpha"},
            key=OTHER_KEY,
            key_id="00000000-0000-4000-8000-000000000000",
            material_id="ff" * 32,
            nonce=bytes.fromhex("cafebabefacedbaddecaf888"),
        ),
    ]


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def _set(data: bytes, index: int, value: int) -> bytes:
    out = bytearray(data)
    out[index] = value
    return bytes(out)


def invalid_cases() -> list[dict[str, Any]]:
    ctx = {"purpose": "test"}
    base = seal(KEY, KEY_ID, MATERIAL_ID, NONCE, b"secret value", ctx)
    ambiguous = seal(KEY, KEY_ID, MATERIAL_ID, NONCE, b"secret value", {"ab": "c"})
    no_ctx = seal(KEY, KEY_ID, MATERIAL_ID, NONCE, b"secret value", None)
    tag_at = len(base) - primitives.GCM_TAG_SIZE

    def case(
        name: str, data: bytes, expected: str, context: dict[str, str] | None = ctx, key: bytes = KEY
    ) -> dict[str, Any]:
        return {"name": name, "key": key.hex(), "context": context, "blob": data.hex(), "expected": expected}

    return [
        case("empty input", b"", MALFORMED),
        case("wrong marker 0xA8", _set(base, 0, 0xA8), MALFORMED),
        case("wrong marker: the blob's base64 text given as bytes", base64.b64encode(base), MALFORMED),
        case("wrong version byte 0x02", _set(base, 1, 0x02), MALFORMED),
        case("wrong version byte 0x00", _set(base, 1, 0x00), MALFORMED),
        case("truncated below the minimum size (77 bytes)", base[: blob.V1_OVERHEAD - 1], MALFORMED),
        case("truncated to the 50-byte header", base[: blob.V1_HEADER_SIZE], MALFORMED),
        case("bit flip in the header: key ID", _flip(base, 2), AUTH),
        case("bit flip in the header: last key ID byte", _flip(base, 17, 0x80), AUTH),
        case("bit flip in the header: material ID", _flip(base, 18), AUTH),
        case("bit flip in the header: last material ID byte", _flip(base, 49, 0x80), AUTH),
        case("bit flip in the nonce", _flip(base, 50), AUTH),
        case("bit flip in the last nonce byte", _flip(base, 61, 0x80), AUTH),
        case("bit flip in the ciphertext", _flip(base, 62), AUTH),
        case("bit flip in the tag", _flip(base, tag_at), AUTH),
        case("bit flip in the last tag byte", _flip(base, len(base) - 1, 0x80), AUTH),
        case("truncated by one byte (tag cut)", base[:-1], AUTH),
        case("one byte appended", base + b"\x00", AUTH),
        case("ciphertext removed, tag kept", base[:62] + base[tag_at:], AUTH),
        case("wrong material key", base, AUTH, key=OTHER_KEY),
        case("context mismatch: different value", base, AUTH, {"purpose": "prod"}),
        case("context mismatch: different key", base, AUTH, {"Purpose": "test"}),
        case("context mismatch: extra pair", base, AUTH, {"purpose": "test", "x": "y"}),
        case("context mismatch: context missing", base, AUTH, None),
        case("context mismatch: empty context", base, AUTH, {}),
        case("context mismatch: sealed without one, opened with one", no_ctx, AUTH, ctx),
        case("ambiguous context: sealed {'ab': 'c'}, opened {'a': 'bc'}", ambiguous, AUTH, {"a": "bc"}),
        case("ambiguous context: sealed {'ab': 'c'}, opened {'abc': ''}", ambiguous, AUTH, {"abc": ""}),
    ]


def canonical_cases() -> list[dict[str, Any]]:
    contexts: list[tuple[str, dict[str, str] | None]] = [
        ("None", None),
        ("empty", {}),
        ("one pair", {"a": "b"}),
        ("empty key and value", {"": ""}),
        ("sorted by key", {"b": "2", "a": "1"}),
        ("ambiguity check 1", {"ab": "c"}),
        ("ambiguity check 2", {"a": "bc"}),
        ("ambiguity check 3", {"abc": ""}),
        ("prefix sorts first", {"aa": "x", "a": "y"}),
        ("'=' and ',' are plain bytes", {"k=v": "a,b"}),
        ("non-ASCII, two-byte UTF-8", {"\u00e9": "\u00fc"}),
        # UTF-8 byte order (= code point order) differs from UTF-16 order here:
        # U+FF61 sorts before U+1F600 in UTF-8, after it in UTF-16
        ("UTF-8 byte order, not UTF-16", {"\U0001f600": "emoji", "\uff61": "halfwidth"}),
        ("AWS example", {"Department": "10-23", "Project": "alpha"}),
    ]
    return [
        {"name": name, "context": context, "canonical": blob.canonical_context(context).hex()}
        for name, context in contexts
    ]


def build() -> dict[str, Any]:
    return {
        "format": "kmsctl symmetric ciphertext blob, version 1 (docs/FORMAT.md section 3)",
        "generator": "tests/vectors/generate.py",
        "outcomes": [MALFORMED, AUTH],
        "valid": valid_cases(),
        "invalid": invalid_cases(),
        "canonical_context": canonical_cases(),
    }


# ----- version 2 -----
SALT = bytes(range(0x40, 0x60))


def _valid_v2(
    name: str,
    plaintext: bytes,
    context: dict[str, str] | None,
    *,
    key: bytes = KEY,
    key_id: str = KEY_ID,
    material_id: str = MATERIAL_ID,
    salt: bytes = SALT,
    nonce: bytes = NONCE,
) -> dict[str, Any]:
    return {
        "name": name,
        "key": key.hex(),
        "key_id": key_id,
        "material_id": material_id,
        "salt": salt.hex(),
        "nonce": nonce.hex(),
        "context": context,
        "plaintext": plaintext.hex(),
        "blob_key": blob.blob_key(key, salt).hex(),
        "blob": seal_v2(key, key_id, material_id, salt, nonce, plaintext, context).hex(),
    }


def valid_cases_v2() -> list[dict[str, Any]]:
    return [
        _valid_v2("no context (None)", b"hello", None),
        _valid_v2("empty context {} (same AAD as None)", b"hello", {}, nonce=bytes.fromhex("ff" * 12)),
        _valid_v2("one pair", b"secret value", {"purpose": "test"}),
        _valid_v2("another salt, same everything else", b"secret value", {"purpose": "test"}, salt=bytes(32)),
        _valid_v2("pairs given unsorted", b"x", {"b": "2", "a": "1", "aa": ""}),
        _valid_v2("non-ASCII keys and values", "p\u00e4ssw\u00f6rd".encode(), {"\u00e9": "\u00fc", "z": "\U0001f600"}),
        _valid_v2("empty plaintext (the format allows it; Encrypt does not)", b"", None),
        _valid_v2("4096-byte plaintext (the Encrypt maximum)", bytes(range(256)) * 16, {"k": "v"}),
        _valid_v2(
            "another key, key ID and material ID",
            bytes(32),
            {"Department": "10-23", "Project": "alpha"},
            key=OTHER_KEY,
            key_id="00000000-0000-4000-8000-000000000000",
            material_id="ff" * 32,
            salt=bytes.fromhex("ff" * 32),
            nonce=bytes.fromhex("cafebabefacedbaddecaf888"),
        ),
    ]


def invalid_cases_v2() -> list[dict[str, Any]]:
    ctx = {"purpose": "test"}
    base = seal_v2(KEY, KEY_ID, MATERIAL_ID, SALT, NONCE, b"secret value", ctx)
    long = seal_v2(KEY, KEY_ID, MATERIAL_ID, SALT, NONCE, bytes(64), ctx)
    no_ctx = seal_v2(KEY, KEY_ID, MATERIAL_ID, SALT, NONCE, b"secret value", None)
    v1 = seal(KEY, KEY_ID, MATERIAL_ID, NONCE, bytes(64), ctx)
    head = base[: blob.HEADER_SIZE]
    _, underived = primitives.gcm_seal(KEY, b"secret value", head + blob.canonical_context(ctx), nonce=NONCE)
    tag_at = len(base) - primitives.GCM_TAG_SIZE
    body = blob.HEADER_SIZE + primitives.GCM_NONCE_SIZE

    def case(
        name: str, data: bytes, expected: str, context: dict[str, str] | None = ctx, key: bytes = KEY
    ) -> dict[str, Any]:
        return {"name": name, "key": key.hex(), "context": context, "blob": data.hex(), "expected": expected}

    return [
        case("empty input", b"", MALFORMED),
        case("marker only", base[:1], MALFORMED),
        case("wrong marker 0xA8", _set(base, 0, 0xA8), MALFORMED),
        case("wrong marker: the blob's base64 text given as bytes", base64.b64encode(base), MALFORMED),
        case("unknown version byte 0x04", _set(base, 1, 0x04), MALFORMED),
        case("unknown version byte 0x00", _set(base, 1, 0x00), MALFORMED),
        case("truncated below the minimum size (109 bytes)", long[: blob.OVERHEAD - 1], MALFORMED),
        case("truncated to the 82-byte header", base[: blob.HEADER_SIZE], MALFORMED),
        case("a version 1 blob relabelled version 2 (too short for it)", _set(v1[:100], 1, 0x02), MALFORMED),
        case("a version 1 blob relabelled version 2", _set(v1, 1, 0x02), AUTH),
        case("a version 2 blob relabelled version 1", _set(base, 1, 0x01), AUTH),
        case("bit flip in the header: key ID", _flip(base, 2), AUTH),
        case("bit flip in the header: material ID", _flip(base, 18), AUTH),
        case("bit flip in the header: last material ID byte", _flip(base, 49, 0x80), AUTH),
        case("bit flip in the salt", _flip(base, 50), AUTH),
        case("bit flip in the last salt byte", _flip(base, 81, 0x80), AUTH),
        case("salt replaced by zeros", base[:50] + bytes(32) + base[82:], AUTH),
        case("bit flip in the nonce", _flip(base, 82), AUTH),
        case("bit flip in the last nonce byte", _flip(base, 93, 0x80), AUTH),
        case("bit flip in the ciphertext", _flip(base, body), AUTH),
        case("bit flip in the tag", _flip(base, tag_at), AUTH),
        case("bit flip in the last tag byte", _flip(base, len(base) - 1, 0x80), AUTH),
        case("truncated by one byte (tag cut)", base[:-1], AUTH),
        case("one byte appended", base + b"\x00", AUTH),
        case("ciphertext removed, tag kept", base[:body] + base[tag_at:], AUTH),
        case("sealed under the material secret itself, not the derived key", head + NONCE + underived, AUTH),
        case("wrong material key", base, AUTH, key=OTHER_KEY),
        case("context mismatch: different value", base, AUTH, {"purpose": "prod"}),
        case("context mismatch: context missing", base, AUTH, None),
        case("context mismatch: extra pair", base, AUTH, {"purpose": "test", "x": "y"}),
        case("context mismatch: sealed without one, opened with one", no_ctx, AUTH, ctx),
    ]


def build_v2() -> dict[str, Any]:
    return {
        "format": "kmsctl symmetric ciphertext blob, version 2 (docs/FORMAT.md section 3)",
        "generator": "tests/vectors/generate.py 2",
        "kdf": {"hash": "SHA-256", "info": blob.KDF_INFO.decode(), "length": 32},
        "outcomes": [MALFORMED, AUTH],
        "valid": valid_cases_v2(),
        "invalid": invalid_cases_v2(),
    }


def main() -> None:
    version = sys.argv[1] if len(sys.argv) > 1 else "1"
    print(json.dumps(build_v2() if version == "2" else build(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

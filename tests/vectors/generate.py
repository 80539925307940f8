"""Generate tests/vectors/ciphertext_blob_v1.json from kmsctl's own code.

    .venv/bin/python tests/vectors/generate.py > tests/vectors/ciphertext_blob_v1.json

Every valid blob is made by ``kmsctl.crypto.blob.seal`` with the AES-GCM nonce
fixed (``primitives.gcm_seal`` takes ``nonce=``), so the output is deterministic
and tests/test_vectors.py can check that the file is still what the code makes.
The layout is specified in docs/FORMAT.md section 3; section 6 describes this file.
"""

from __future__ import annotations

import base64
import functools
import json
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
def fixed_nonce(nonce: bytes) -> Iterator[None]:
    """Make ``blob.seal`` use ``nonce`` instead of a random one."""
    with mock.patch.object(primitives, "gcm_seal", functools.partial(primitives.gcm_seal, nonce=nonce)):
        yield


def seal(
    key: bytes, key_id: str, material_id: str, nonce: bytes, plaintext: bytes, context: dict[str, str] | None
) -> bytes:
    with fixed_nonce(nonce):
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
        case("truncated below the minimum size (77 bytes)", base[: blob.OVERHEAD - 1], MALFORMED),
        case("truncated to the 50-byte header", base[: blob.HEADER_SIZE], MALFORMED),
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


def main() -> None:
    print(json.dumps(build(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""The ciphertext blob v1 test vectors (tests/vectors/ciphertext_blob_v1.json)
against kmsctl's code, and against an independent reading of docs/FORMAT.md
section 3, so that the spec, the vectors and the code cannot drift apart."""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from helpers import load_script
from hypothesis import given
from hypothesis import strategies as st

from kmsctl.crypto import blob, primitives

VECTORS_DIR = Path(__file__).parent / "vectors"
VECTORS = json.loads((VECTORS_DIR / "ciphertext_blob_v1.json").read_text(encoding="utf-8"))
EXCEPTIONS: dict[str, type[Exception]] = {
    "MalformedBlob": blob.MalformedBlob,
    "AuthenticationFailed": primitives.AuthenticationFailed,
}


generate = load_script(VECTORS_DIR / "generate.py", "kmsctl_vector_generator")


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


def spec_canonical(context: dict[str, str] | None) -> bytes:
    """FORMAT.md 3.2, written from the text: u32 count, then per pair sorted by
    the key's UTF-8 bytes, u32 length + key, u32 length + value (big-endian)."""
    pairs = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in (context or {}).items())
    out = len(pairs).to_bytes(4, "big")
    for k, v in pairs:
        out += len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v
    return out


def spec_seal(case: dict[str, Any]) -> bytes:
    """FORMAT.md 3.1, written from the text with AESGCM directly."""
    header = b"\xa9\x01" + uuid.UUID(case["key_id"]).bytes + bytes.fromhex(case["material_id"])
    assert len(header) == 50
    nonce = bytes.fromhex(case["nonce"])
    sealed = AESGCM(bytes.fromhex(case["key"])).encrypt(
        nonce, bytes.fromhex(case["plaintext"]), header + spec_canonical(case["context"])
    )
    return header + nonce + sealed


def test_vector_file_is_what_the_generator_makes() -> None:
    assert generate.build() == VECTORS, "regenerate: python tests/vectors/generate.py > tests/vectors/..."


def test_vector_file_has_every_kind_of_case() -> None:
    names = " ".join(_ids(VECTORS["invalid"]))
    for word in ("header", "nonce", "ciphertext", "tag", "truncated", "version", "marker", "context", "ambiguous"):
        assert word in names
    assert {c["expected"] for c in VECTORS["invalid"]} == set(EXCEPTIONS)
    assert {"None", "empty"} <= set(_ids(VECTORS["canonical_context"]))


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_seal_gives_the_blob(case: dict[str, Any]) -> None:
    made = generate.seal(
        bytes.fromhex(case["key"]),
        case["key_id"],
        case["material_id"],
        bytes.fromhex(case["nonce"]),
        bytes.fromhex(case["plaintext"]),
        case["context"],
    )
    assert made.hex() == case["blob"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_blob_matches_the_written_spec(case: dict[str, Any]) -> None:
    assert spec_seal(case).hex() == case["blob"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_parse_and_open(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["blob"])
    assert len(data) == blob.V1_OVERHEAD + len(bytes.fromhex(case["plaintext"]))
    parsed = blob.parse(data)
    assert parsed.key_id == case["key_id"]
    assert parsed.material_id == case["material_id"]
    assert parsed.nonce.hex() == case["nonce"]
    assert parsed.header == data[: blob.V1_HEADER_SIZE]
    assert blob.looks_like_blob(data)
    plaintext = blob.open_blob(bytes.fromhex(case["key"]), parsed, case["context"])
    assert plaintext.hex() == case["plaintext"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_invalid(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["blob"])
    key = bytes.fromhex(case["key"])
    if case["expected"] == "MalformedBlob":
        with pytest.raises(blob.MalformedBlob):
            blob.parse(data)
    else:
        assert case["expected"] == "AuthenticationFailed"
        parsed = blob.parse(data)  # well-formed: only the AEAD can reject it
        with pytest.raises(primitives.AuthenticationFailed):
            blob.open_blob(key, parsed, case["context"])


@pytest.mark.parametrize("case", VECTORS["canonical_context"], ids=_ids(VECTORS["canonical_context"]))
def test_canonical_context(case: dict[str, Any]) -> None:
    assert blob.canonical_context(case["context"]).hex() == case["canonical"]
    assert spec_canonical(case["context"]).hex() == case["canonical"]


def test_canonical_context_of_empty_and_none() -> None:
    by_name = {c["name"]: c["canonical"] for c in VECTORS["canonical_context"]}
    assert by_name["None"] == by_name["empty"] == "00000000"
    assert blob.canonical_context(None) == blob.canonical_context({}) == struct.pack(">I", 0)


def test_none_and_empty_context_seal_identically() -> None:
    nonce = bytes(12)
    args = (generate.KEY, generate.KEY_ID, generate.MATERIAL_ID, nonce, b"p")
    assert generate.seal(*args, None) == generate.seal(*args, {})


def test_ambiguous_pairs_encode_differently() -> None:
    assert blob.canonical_context({"ab": "c"}) != blob.canonical_context({"a": "bc"})


_text = st.text(max_size=8)


@given(st.dictionaries(_text, _text, max_size=4), st.dictionaries(_text, _text, max_size=4))
def test_canonical_context_is_injective(a: dict[str, str], b: dict[str, str]) -> None:
    assert (blob.canonical_context(a) == blob.canonical_context(b)) == (a == b)

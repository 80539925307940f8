"""The sealed file v1 vectors (tests/vectors/sealed_v1.json) against kmsctl's
code, and against an implementation written from docs/SEALED-FORMAT.md alone,
so that the spec, the vectors and the code cannot drift apart."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from helpers import load_script

from kmsctl.crypto import sealed

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = ROOT / "tests" / "vectors"
VECTORS = json.loads((VECTORS_DIR / "sealed_v1.json").read_text(encoding="utf-8"))
SPEC = (ROOT / "docs" / "SEALED-FORMAT.md").read_text(encoding="utf-8")


generate = load_script(VECTORS_DIR / "generate_sealed.py", "kmsctl_sealed_generator")


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


def _plaintext(case: dict[str, Any]) -> bytes:
    if "plaintext" in case:
        return bytes.fromhex(case["plaintext"])
    assert case["plaintext_pattern"] == "i mod 251"
    return bytes(i % 251 for i in range(case["plaintext_size"]))


# ----- the spec, section by section, with pyca/cryptography directly -----
def spec_seal(case: dict[str, Any], plaintext: bytes) -> bytes:
    dk, salt, size = bytes.fromhex(case["data_key"]), bytes.fromhex(case["salt"]), case["chunk_size"]
    header = json.dumps(  # section 2
        {
            "KeyId": case["key_id"],
            "EncryptionContext": case["context"],
            "EncryptedDataKey": base64.b64encode(bytes.fromhex(case["encrypted_data_key"])).decode(),
            "Algorithm": "AES_256_GCM_HKDF_SHA256_COMMIT_STREAM",
            "ChunkSize": size,
            "Salt": base64.b64encode(salt).decode(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")

    def key(purpose: str) -> bytes:  # section 3
        info = b"kmsctl sealed v1 " + purpose.encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(dk)

    signed = b"\x89KMSSEAL" + b"\x01" + len(header).to_bytes(4, "big") + header + key("commit")
    mac = hmac.HMAC(key("header"), hashes.SHA256())
    mac.update(signed)
    pieces = [plaintext[i : i + size] for i in range(0, len(plaintext), size)] or [b""]  # section 4
    aead = AESGCM(key("payload"))
    body = b"".join(
        aead.encrypt(i.to_bytes(11, "big") + (b"\x01" if i == len(pieces) - 1 else b"\x00"), p, None)
        for i, p in enumerate(pieces)
    )
    return signed + mac.finalize() + body


def test_vector_file_is_what_the_generator_makes() -> None:
    assert generate.build() == VECTORS, (
        "regenerate: python tests/vectors/generate_sealed.py > tests/vectors/sealed_v1.json"
    )


def test_vector_file_has_every_kind_of_case() -> None:
    names = " ".join(_ids(VECTORS["invalid"]))
    for word in (
        "magic", "version", "length", "canonical", "member", "commitment", "MAC", "wrong data key",
        "truncated after chunk", "truncated inside", "dropped", "swapped", "duplicated", "appended",
        "no body", "non-conforming", "bit flipped",
    ):  # fmt: skip
        assert word in names, word
    assert {c["expected"] for c in VECTORS["invalid"]} == set(VECTORS["outcomes"])
    sizes = {len(_plaintext(c)) for c in VECTORS["valid"]}
    assert {0, 1, 65535, 65536, 65537, 5 * 65536 + 7} <= sizes


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_vector_from_the_spec_alone(case: dict[str, Any]) -> None:
    made = spec_seal(case, _plaintext(case))
    if "sealed" in case:
        assert made.hex() == case["sealed"]
    else:
        assert (len(made), hashlib.sha256(made).hexdigest()) == (case["sealed_size"], case["sealed_sha256"])


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_vector_opens(case: dict[str, Any]) -> None:
    plaintext = _plaintext(case)
    data = bytes.fromhex(case["sealed"]) if "sealed" in case else spec_seal(case, plaintext)
    src = io.BytesIO(data)
    header = sealed.read_header(src)
    assert (header.key_id, header.context, header.chunk_size) == (case["key_id"], case["context"], case["chunk_size"])
    assert header.encrypted_data_key.hex() == case["encrypted_data_key"]
    assert sealed.plaintext_size(header, len(data) - header.size) == len(plaintext)
    out = io.BytesIO()
    assert sealed.Opener(header, bytes.fromhex(case["data_key"])).stream(src, out) == len(plaintext)
    assert out.getvalue() == plaintext


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_invalid_vector_fails_as_expected(case: dict[str, Any]) -> None:
    released, error = generate.open_sealed(bytes.fromhex(case["sealed"]), bytes.fromhex(case["data_key"]))
    assert error is not None, "the reader accepted it"
    assert (error.code, error.message) == (case["expected"], case["message"])
    assert error.exit_code == (2 if case["expected"] == "ValidationException" else 6)
    assert released.hex() == case["output_before_failure"]


def test_spec_shows_the_reference_vector() -> None:
    """SEALED-FORMAT.md section 9 prints vector 1 piece by piece; the pieces
    put together must be the vector's file."""
    case = VECTORS["valid"][0]
    block = SPEC.split("```text", 1)[1].split("```", 1)[0]
    rows = dict(re.findall(r"^(\S+(?: \S+)?)\s{2,}(\S.*)$", block, re.MULTILINE))
    assert rows["data key"] == case["data_key"] and rows["salt"] == case["salt"]
    rebuilt = (
        rows["magic, version"]
        + rows["H"].split()[0]
        + rows["header"].encode().hex()
        + rows["commitment"]
        + rows["header MAC"]
        + "".join(rows[f"chunk {i}"] for i in range(3))
    )
    assert rebuilt == case["sealed"]
    assert rows["K_commit"] == rows["commitment"]

"""Ciphertext blob version 2 (a fresh AES key per blob, derived with HKDF from
a random salt it carries): the vectors (tests/vectors/ciphertext_blob_v2.json)
against kmsctl's code and against a reader written from docs/FORMAT.md section
3 with pyca/cryptography alone; new blobs are version 2 and version 1 blobs
still decrypt, in-process and through the real binary; sealed files carry a
version 2 data key."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from helpers import load_script
from hypothesis import given, settings
from hypothesis import strategies as st

from kmsctl import errors as E
from kmsctl.crypto import blob, primitives, sealed

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = ROOT / "tests" / "vectors"
VECTORS = json.loads((VECTORS_DIR / "ciphertext_blob_v2.json").read_text(encoding="utf-8"))
V1_VECTORS = json.loads((VECTORS_DIR / "ciphertext_blob_v1.json").read_text(encoding="utf-8"))
FORMAT_MD = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")

generate = load_script(VECTORS_DIR / "generate.py", "kmsctl_vector_generator_v2")


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


# ----- a reader written from FORMAT.md section 3, pyca/cryptography only -----
class SpecMalformed(Exception):
    pass


class SpecAuthFailed(Exception):
    pass


def spec_canonical(context: dict[str, str] | None) -> bytes:
    pairs = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in (context or {}).items())
    out = len(pairs).to_bytes(4, "big")
    for k, v in pairs:
        out += len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v
    return out


def spec_blob_key(material: bytes, salt: bytes) -> bytes:
    """Section 3.1: HKDF-SHA256, IKM the material secret, salt from the blob, info "kmsctl blob v2", 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"kmsctl blob v2").derive(material)


def spec_decrypt(material: bytes, data: bytes, context: dict[str, str] | None) -> bytes:
    """Section 3.3, both versions: the header is 50 bytes (v1) or 82 (v2),
    then a 12-byte nonce, then ciphertext and a 16-byte tag."""
    if len(data) < 2 or data[0] != 0xA9:
        raise SpecMalformed("marker")
    if data[1] not in (1, 2):
        raise SpecMalformed("version")
    header_size = 50 if data[1] == 1 else 82
    if len(data) < header_size + 12 + 16:
        raise SpecMalformed("size")
    header, nonce, sealed_part = data[:header_size], data[header_size : header_size + 12], data[header_size + 12 :]
    key = spec_blob_key(material, header[50:82]) if data[1] == 2 else material
    try:
        return AESGCM(key).decrypt(nonce, sealed_part, header + spec_canonical(context))
    except InvalidTag:
        raise SpecAuthFailed from None


def spec_encrypt(case: dict[str, Any]) -> bytes:
    header = (
        b"\xa9\x02" + uuid.UUID(case["key_id"]).bytes + bytes.fromhex(case["material_id"]) + bytes.fromhex(case["salt"])
    )
    assert len(header) == 82
    nonce = bytes.fromhex(case["nonce"])
    key = spec_blob_key(bytes.fromhex(case["key"]), bytes.fromhex(case["salt"]))
    return (
        header
        + nonce
        + AESGCM(key).encrypt(nonce, bytes.fromhex(case["plaintext"]), header + spec_canonical(case["context"]))
    )


# ----- the vectors -----
def test_vector_file_is_what_the_generator_makes() -> None:
    assert generate.build_v2() == VECTORS, "regenerate: python tests/vectors/generate.py 2 > tests/vectors/..."


def test_v1_vector_file_never_changes() -> None:
    assert generate.build() == V1_VECTORS


def test_vector_file_has_every_kind_of_case() -> None:
    names = " ".join(_ids(VECTORS["invalid"]))
    for word in (
        "header",
        "salt",
        "nonce",
        "ciphertext",
        "tag",
        "truncated",
        "version",
        "marker",
        "context",
        "derived",
    ):
        assert word in names, word
    assert {c["expected"] for c in VECTORS["invalid"]} == {"MalformedBlob", "AuthenticationFailed"}


def test_format_md_states_the_derivation() -> None:
    assert '"kmsctl blob v2"' in FORMAT_MD
    assert "HKDF-SHA256" in FORMAT_MD
    assert VECTORS["kdf"] == {"hash": "SHA-256", "info": "kmsctl blob v2", "length": 32}


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_vector_decrypts_by_the_spec(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["blob"])
    key = bytes.fromhex(case["key"])
    assert spec_blob_key(key, bytes.fromhex(case["salt"])).hex() == case["blob_key"]
    assert spec_decrypt(key, data, case["context"]).hex() == case["plaintext"]
    assert spec_encrypt(case).hex() == case["blob"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_valid_vector_with_kmsctl(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["blob"])
    assert len(data) == blob.OVERHEAD + len(bytes.fromhex(case["plaintext"]))
    parsed = blob.parse(data)
    assert (parsed.version, parsed.key_id, parsed.material_id) == (2, case["key_id"], case["material_id"])
    assert (parsed.salt.hex(), parsed.nonce.hex(), parsed.header) == (case["salt"], case["nonce"], data[:82])
    assert blob.open_blob(bytes.fromhex(case["key"]), parsed, case["context"]).hex() == case["plaintext"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_invalid_vector(case: dict[str, Any]) -> None:
    data, key = bytes.fromhex(case["blob"]), bytes.fromhex(case["key"])
    if case["expected"] == "MalformedBlob":
        with pytest.raises(blob.MalformedBlob):
            blob.parse(data)
        with pytest.raises(SpecMalformed):
            spec_decrypt(key, data, case["context"])
    else:
        with pytest.raises(primitives.AuthenticationFailed):
            blob.open_blob(key, blob.parse(data), case["context"])
        with pytest.raises(SpecAuthFailed):
            spec_decrypt(key, data, case["context"])


@pytest.mark.parametrize("case", V1_VECTORS["valid"], ids=_ids(V1_VECTORS["valid"]))
def test_v1_vectors_decrypt_by_the_same_reader(case: dict[str, Any]) -> None:
    assert (
        spec_decrypt(bytes.fromhex(case["key"]), bytes.fromhex(case["blob"]), case["context"]).hex()
        == case["plaintext"]
    )


_text = st.text(max_size=8)


@settings(max_examples=50)
@given(st.binary(max_size=64), st.dictionaries(_text, _text, max_size=3))
def test_every_new_blob_follows_the_spec(plaintext: bytes, context: dict[str, str]) -> None:
    data = blob.seal(generate.KEY, generate.KEY_ID, generate.MATERIAL_ID, plaintext, context)
    assert data[:2] == b"\xa9\x02" and len(data) == len(plaintext) + 110
    assert spec_decrypt(generate.KEY, data, dict(reversed(list(context.items())))) == plaintext


def test_each_blob_has_its_own_salt_and_key() -> None:
    blobs = [blob.parse(blob.seal(generate.KEY, generate.KEY_ID, generate.MATERIAL_ID, b"x", None)) for _ in range(50)]
    assert len({b.salt for b in blobs}) == 50
    assert len({blob.blob_key(generate.KEY, b.salt) for b in blobs}) == 50


# ----- through the service and the real binary -----
def _v1_blob_under(kms: Any, key_id: str, plaintext: bytes, context: dict[str, str] | None) -> bytes:
    """A version 1 blob, as kmsctl wrote them before version 2, under the key's current material."""
    material_id = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    secret = kms._material_secret(key_id, material_id)
    return bytes(generate.seal(secret, key_id, material_id, bytes(range(12)), plaintext, context))


def test_encrypt_writes_version_2_and_version_1_still_decrypts(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    new = kms.encrypt(KeyId=key, Plaintext=b"new", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert new[:2] == b"\xa9\x02" and len(new) == 3 + 110
    old = _v1_blob_under(kms, key, b"old", {"a": "b"})
    assert kms.decrypt(CiphertextBlob=old, EncryptionContext={"a": "b"})["Plaintext"] == b"old"
    with pytest.raises(E.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=old, EncryptionContext={"a": "c"})
    moved = kms.re_encrypt(CiphertextBlob=old, SourceEncryptionContext={"a": "b"}, DestinationKeyId=key)
    assert moved["CiphertextBlob"][:2] == b"\xa9\x02"
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"old"
    data_key = kms.generate_data_key(KeyId=key, KeySpec="AES_256")["CiphertextBlob"]
    assert data_key[:2] == b"\xa9\x02" and len(data_key) == 32 + 110


def test_version_1_blob_decrypts_through_the_binary(kms: Any, sub: Any, tmp_path: Path) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    old = tmp_path / "old.enc"
    old.write_bytes(_v1_blob_under(kms, key, b"written by an older kmsctl\n", {"app": "web"}))
    kms.keyring.close()
    r = sub("decrypt", "-c", "app=web", str(old))
    assert (r.returncode, r.stdout) == (0, b"written by an older kmsctl\n"), r.stderr
    r = sub("decrypt", "-c", "app=api", str(old))
    assert r.returncode == 6 and b"InvalidCiphertextException" in r.stderr
    enc = sub("encrypt", "-k", key, input=b"new\n")
    assert enc.returncode == 0 and enc.stdout[:2] == b"\xa9\x02"
    assert sub("decrypt", input=enc.stdout).stdout == b"new\n"


def test_unknown_blob_version_is_invalid_ciphertext(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    data = bytearray(kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"])
    data[1] = 4  # 3 is a custom key store's blob
    with pytest.raises(E.InvalidCiphertextException, match="unsupported ciphertext blob version 4"):
        kms.decrypt(CiphertextBlob=bytes(data))


def test_sealed_file_carries_a_version_2_data_key_and_unseals(cli: Any, tmp_path: Path) -> None:
    key = cli("-o", "text", "create").stdout.strip()
    body = bytes(range(256)) * 1000
    out = cli("seal", "-k", key, "-c", "db=main", input=body)
    assert out.exit_code == 0, out.stderr
    header = sealed.read_header(io.BytesIO(out.stdout_bytes))
    assert header.encrypted_data_key[:2] == b"\xa9\x02"
    assert len(header.encrypted_data_key) == sealed.DATA_KEY_SIZE + blob.OVERHEAD
    back = cli("unseal", input=out.stdout_bytes)
    assert back.exit_code == 0 and back.stdout_bytes == body

"""ML-KEM keys (ML_KEM_768, ML_KEM_1024; KeyUsage ENCAPSULATE_DECAPSULATE), the
Encapsulate and Decapsulate operations and their commands, proven against
pyca/cryptography's own ML-KEM used directly, outside kmsctl's code."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem

from kmsctl import errors as E

SPECS = {"ML_KEM_768": (1088, mlkem.MLKEM768PublicKey), "ML_KEM_1024": (1568, mlkem.MLKEM1024PublicKey)}
HAS_512 = hasattr(mlkem, "MLKEM512PrivateKey")


def _key(kms: Any, spec: str) -> str:
    return str(kms.create_key(KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]["KeyId"])


# ----- the service -----
@pytest.mark.parametrize("spec", SPECS)
def test_key_metadata_and_public_key(kms: Any, spec: str) -> None:
    md = kms.create_key(KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]
    assert (md["KeySpec"], md["KeyUsage"], md["EncapsulationAlgorithms"]) == (
        spec,
        "ENCAPSULATE_DECAPSULATE",
        ["ML_KEM"],
    )
    assert "CustomerMasterKeySpec" not in md and "SigningAlgorithms" not in md
    out = kms.get_public_key(KeyId=md["KeyId"])
    assert set(out) == {"KeyId", "PublicKey", "KeySpec", "KeyUsage", "EncapsulationAlgorithms"}
    assert isinstance(serialization.load_der_public_key(out["PublicKey"]), SPECS[spec][1])


@pytest.mark.parametrize("spec", SPECS)
def test_cryptography_encapsulates_kmsctl_decapsulates(kms: Any, spec: str) -> None:
    key = _key(kms, spec)
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    secret, ciphertext = public.encapsulate()  # type: ignore[union-attr]
    assert len(ciphertext) == SPECS[spec][0]
    out = kms.decapsulate(KeyId=key, SharedSecretCiphertextBlob=ciphertext, EncapsulationAlgorithm="ML_KEM")
    assert out == {"KeyId": kms.key_arn(key), "SharedSecret": secret, "EncapsulationAlgorithm": "ML_KEM"}


@pytest.mark.parametrize("spec", SPECS)
def test_kmsctl_encapsulates_cryptography_decapsulates(kms: Any, spec: str) -> None:
    key = _key(kms, spec)
    out = kms.encapsulate(KeyId=key, EncapsulationAlgorithm="ML_KEM")
    assert set(out) == {"KeyId", "SharedSecret", "SharedSecretCiphertextBlob", "EncapsulationAlgorithm"}
    assert len(out["SharedSecret"]) == 32 and len(out["SharedSecretCiphertextBlob"]) == SPECS[spec][0]
    # the key pair's private half, as sealed in the keyring, opened by pyca/cryptography itself
    private = serialization.load_der_private_key(kms._key_secret(kms._load_key(key)), password=None)
    assert private.decapsulate(out["SharedSecretCiphertextBlob"]) == out["SharedSecret"]  # type: ignore[union-attr]
    again = kms.encapsulate(KeyId=key, EncapsulationAlgorithm="ML_KEM")
    assert again["SharedSecret"] != out["SharedSecret"]


@pytest.mark.parametrize("spec", SPECS)
def test_data_key_pair_is_an_ml_kem_pair(kms: Any, spec: str) -> None:
    wrapping = kms.create_key()["KeyMetadata"]["KeyId"]
    pair = kms.generate_data_key_pair(KeyId=wrapping, KeyPairSpec=spec)
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    secret, ciphertext = serialization.load_der_public_key(pair["PublicKey"]).encapsulate()  # type: ignore[union-attr]
    assert private.decapsulate(ciphertext) == secret  # type: ignore[union-attr]
    assert kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"] == pair["PrivateKeyPlaintext"]


def test_implicit_rejection_and_ciphertext_length(kms: Any) -> None:
    key, other = _key(kms, "ML_KEM_768"), _key(kms, "ML_KEM_768")
    out = kms.encapsulate(KeyId=key, EncapsulationAlgorithm="ML_KEM")
    bad = bytearray(out["SharedSecretCiphertextBlob"])
    bad[0] ^= 1

    def decap(k: str, ct: bytes) -> bytes:
        return bytes(
            kms.decapsulate(KeyId=k, SharedSecretCiphertextBlob=ct, EncapsulationAlgorithm="ML_KEM")["SharedSecret"]
        )

    # an altered ciphertext, or one for another key, gives another 32-byte secret, not an error (FIPS 203)
    assert len(decap(key, bytes(bad))) == 32 and decap(key, bytes(bad)) != out["SharedSecret"]
    assert decap(other, out["SharedSecretCiphertextBlob"]) != out["SharedSecret"]
    for ct in (out["SharedSecretCiphertextBlob"][:-1], out["SharedSecretCiphertextBlob"] + b"\0", bytes(1568)):
        with pytest.raises(E.InvalidCiphertextException, match="ML_KEM_768 ciphertexts are 1088 bytes"):
            decap(key, ct)
    with pytest.raises(E.ValidationException):
        decap(key, b"")


def test_errors_in_aws_order(kms: Any) -> None:
    key = _key(kms, "ML_KEM_768")
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(E.ValidationException, match="EncapsulationAlgorithm"):
        kms.encapsulate(KeyId=key)  # required, as in botocore's model
    with pytest.raises(E.ValidationException, match=r"enum value set: \[ML_KEM\]"):
        kms.encapsulate(KeyId=key, EncapsulationAlgorithm="ECDH")
    with pytest.raises(E.InvalidKeyUsageException):
        kms.encapsulate(KeyId=symmetric, EncapsulationAlgorithm="ML_KEM")
    with pytest.raises(E.InvalidKeyUsageException):
        kms.sign(KeyId=key, Message=b"x", SigningAlgorithm="ML_DSA_SHAKE_256")
    with pytest.raises(E.DryRunOperationException):
        kms.encapsulate(KeyId=key, EncapsulationAlgorithm="ML_KEM", DryRun=True)
    with pytest.raises(E.ValidationException):
        kms.create_key(KeySpec="ML_KEM_768", KeyUsage="KEY_AGREEMENT")
    kms.disable_key(KeyId=key)
    with pytest.raises(E.DisabledException):
        kms.decapsulate(KeyId=key, SharedSecretCiphertextBlob=bytes(1088), EncapsulationAlgorithm="ML_KEM")


@pytest.mark.skipif(HAS_512, reason="the installed pyca/cryptography has ML-KEM-512")
def test_ml_kem_512_is_refused_while_cryptography_lacks_it(kms: Any) -> None:
    with pytest.raises(E.UnsupportedOperationException, match="ML_KEM_512 is not available: pyca/cryptography"):
        kms.create_key(KeySpec="ML_KEM_512", KeyUsage="ENCAPSULATE_DECAPSULATE")
    wrapping = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(E.UnsupportedOperationException, match="ML_KEM_512"):
        kms.generate_data_key_pair(KeyId=wrapping, KeyPairSpec="ML_KEM_512")
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [wrapping]  # nothing half-made


@pytest.mark.skipif(not HAS_512, reason="the installed pyca/cryptography lacks ML-KEM-512")
def test_ml_kem_512_works_once_cryptography_has_it(kms: Any) -> None:
    key = _key(kms, "ML_KEM_512")
    out = kms.encapsulate(KeyId=key, EncapsulationAlgorithm="ML_KEM")
    assert len(out["SharedSecretCiphertextBlob"]) == 768


def test_audit_records_never_hold_the_secret(kms: Any, keyring_home: Path) -> None:
    key = _key(kms, "ML_KEM_1024")
    out = kms.encapsulate(KeyId=key, EncapsulationAlgorithm="ML_KEM")
    kms.decapsulate(
        KeyId=key, SharedSecretCiphertextBlob=out["SharedSecretCiphertextBlob"], EncapsulationAlgorithm="ML_KEM"
    )
    records = list(kms.audit_export())
    by_name = {r["eventName"]: r for r in records}
    assert by_name["Encapsulate"]["responseElements"]["sharedSecret"] == {"length": 32}
    assert by_name["Encapsulate"]["responseElements"]["sharedSecretCiphertextBlob"] == {"length": 1568}
    assert by_name["Decapsulate"]["requestParameters"]["sharedSecretCiphertextBlob"] == {"length": 1568}
    assert by_name["Decapsulate"]["responseElements"]["sharedSecret"] == {"length": 32}
    assert by_name["Encapsulate"]["readOnly"] is True
    text = json.dumps(records, default=str)
    secret = out["SharedSecret"]
    for spelling in (
        base64.b64encode(secret).decode(),
        secret.hex(),
        base64.b64encode(out["SharedSecretCiphertextBlob"][:30]).decode(),
    ):
        assert spelling not in text
    kms.keyring.close()
    for f in keyring_home.iterdir():
        if f.is_file():
            assert secret not in f.read_bytes(), f


# ----- the commands, in-process and through the real binary -----
def test_cli_round_trip_with_cryptography_as_the_peer(sub: Any, tmp_path: Path) -> None:
    created = sub("-o", "text", "create", "--key-spec", "ML_KEM_768", "--alias", "alias/kem")
    assert created.returncode == 0, created.stderr
    pem = sub("public-key", "alias/kem")
    assert pem.returncode == 0 and pem.stdout.startswith(b"-----BEGIN PUBLIC KEY-----")
    # the peer: pyca/cryptography with the PEM, no kmsctl code
    secret, ciphertext = serialization.load_pem_public_key(pem.stdout).encapsulate()  # type: ignore[union-attr]
    (tmp_path / "ct.bin").write_bytes(ciphertext)
    raw = sub("decapsulate", "-k", "alias/kem", str(tmp_path / "ct.bin"))
    assert (raw.returncode, raw.stdout) == (0, secret), raw.stderr
    b64 = sub("decapsulate", "-k", "alias/kem", "--base64", input=base64.b64encode(ciphertext))
    assert b64.stdout == base64.b64encode(secret) + b"\n"
    doc = json.loads(sub("-o", "json", "decapsulate", "-k", "alias/kem", str(tmp_path / "ct.bin")).stdout)
    assert doc == {
        "KeyId": doc["KeyId"],
        "SharedSecret": base64.b64encode(secret).decode(),
        "EncapsulationAlgorithm": "ML_KEM",
    }
    assert doc["KeyId"].endswith(created.stdout.decode().strip())


def test_cli_encapsulate_shapes(cli: Any) -> None:
    key = cli("-o", "text", "create", "--key-spec", "ML_KEM_1024").stdout.strip()  # the only usage, picked
    doc = json.loads(cli("-o", "json", "encapsulate", "-k", key).stdout)
    assert list(doc) == ["KeyId", "SharedSecret", "SharedSecretCiphertextBlob", "EncapsulationAlgorithm"]
    ciphertext = base64.b64decode(doc["SharedSecretCiphertextBlob"])
    assert len(ciphertext) == 1568 and doc["EncapsulationAlgorithm"] == "ML_KEM"
    back = cli("decapsulate", "-k", key, "--base64", input=doc["SharedSecretCiphertextBlob"])
    assert back.exit_code == 0 and back.stdout.strip() == doc["SharedSecret"]
    text = cli("-o", "text", "encapsulate", "-k", key).stdout.rstrip("\n").split("\t")
    assert len(text) == 4 and len(base64.b64decode(text[0])) == 1568 and len(base64.b64decode(text[1])) == 32
    assert text[3] == "ML_KEM"


def test_cli_errors_are_one_line_with_their_exit_codes(cli: Any) -> None:
    key = cli("-o", "text", "create", "--key-spec", "ML_KEM_768").stdout.strip()
    short = cli("decapsulate", "-k", key, input=b"\x00" * 100)
    assert short.exit_code == 6
    assert short.stderr.strip().splitlines() == [
        "kmsctl: InvalidCiphertextException: The ciphertext is invalid: ML_KEM_768 ciphertexts are 1088 bytes, "
        "this one is 100"
    ]
    wrong = cli("encapsulate", "-k", cli("-o", "text", "create").stdout.strip())
    assert wrong.exit_code == 2 and "InvalidKeyUsageException" in wrong.stderr
    if not HAS_512:
        refused = cli("create", "--key-spec", "ML_KEM_512")
        assert refused.exit_code == 4
        assert refused.stderr.startswith("kmsctl: UnsupportedOperationException: KeySpec ML_KEM_512 is not available")

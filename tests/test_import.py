"""Import of key material (BYOK): material wrapped by openssl exactly as AWS
documents it, for each wrapping algorithm, imports, and is provably the
material in use; every import error reaches its exit code; expiry takes the
key to PendingImport with no daemon, and the same material brings it back."""

from __future__ import annotations

import base64
import hmac
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kmsctl import errors as E

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
ALGORITHMS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"]


def sh(cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, shell=True, check=True, cwd=cwd, capture_output=True)


def wrap(folder: Path, algorithm: str, material: str = "Material.bin", out: str = "EncryptedKeyMaterial.bin") -> bytes:
    """The openssl commands AWS documents, with WrappingPublicKey.der in ``folder``."""
    md = "sha256" if algorithm.endswith("SHA_256") else "sha1"
    oaep = f"-keyform DER -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:{md} -pkeyopt rsa_mgf1_md:{md}"
    if algorithm.startswith("RSAES_OAEP"):
        sh(f"openssl pkeyutl -encrypt -in {material} -out {out} -inkey WrappingPublicKey.der {oaep}", folder)
    else:
        sh("openssl rand -out aes-key.bin 32", folder)
        sh(
            "openssl enc -id-aes256-wrap-pad -K \"$(xxd -p < aes-key.bin | tr -d '\\n')\" -iv A65959A6 "
            f"-in {material} -out key-material-wrapped.bin",
            folder,
        )
        sh(
            f"openssl pkeyutl -encrypt -in aes-key.bin -out aes-key-wrapped.bin -inkey WrappingPublicKey.der {oaep}",
            folder,
        )
        sh(f"cat aes-key-wrapped.bin key-material-wrapped.bin > {out}", folder)
    return (folder / out).read_bytes()


def ok(cli: Any, *args: str, input: bytes | None = None) -> Any:
    r = cli(*args, input=input)
    assert r.exit_code == 0, r.stderr
    return r


def external(cli: Any, spec: str = "SYMMETRIC_DEFAULT", usage: str | None = None) -> str:
    args = ["-o", "text", "create", "--origin", "EXTERNAL", "--key-spec", spec]
    if usage:
        args += ["--key-usage", usage]
    return ok(cli, *args).stdout.strip()


def params(cli: Any, key: str, folder: Path, algorithm: str, spec: str = "RSA_2048") -> None:
    folder.mkdir(exist_ok=True)
    ok(
        cli,
        "import",
        "params",
        key,
        "--wrapping-algorithm",
        algorithm,
        "--wrapping-spec",
        spec,
        "--out-dir",
        str(folder),
    )


def import_material(cli: Any, key: str, folder: Path, *extra: str) -> Any:
    return cli(
        "import", "material", key, "--material", str(folder / "EncryptedKeyMaterial.bin"),
        "--import-token", str(folder / "ImportToken.bin"), *(extra or ("--no-expiry",)),
    )  # fmt: skip


def decrypt_by_the_spec(material: bytes, blob: bytes, context: bytes = b"\x00\x00\x00\x00") -> bytes:
    """docs/FORMAT.md section 3.1, version 2, without kmsctl."""
    assert blob[0] == 0xA9 and blob[1] == 2
    header, salt, nonce = blob[:82], blob[50:82], blob[82:94]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"kmsctl blob v2").derive(material)
    return AESGCM(key).decrypt(nonce, blob[94:], header + context)


# ----- every wrapping algorithm, and the material provably in use -----
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_symmetric_material_wrapped_by_openssl_imports_and_is_the_key_in_use(
    cli: Any, tmp_path: Path, algorithm: str
) -> None:
    key = external(cli)
    assert json.loads(ok(cli, "-o", "json", "describe", key).stdout)["KeyMetadata"]["KeyState"] == "PendingImport"
    params(cli, key, tmp_path, algorithm)
    sh("openssl rand -out Material.bin 32", tmp_path)
    wrap(tmp_path, algorithm)
    out = import_material(cli, key, tmp_path)
    assert out.exit_code == 0, out.stderr
    key_id, material_id = out.stdout.split()
    assert key_id == key and len(material_id) == 64
    md = json.loads(ok(cli, "-o", "json", "describe", key).stdout)["KeyMetadata"]
    assert (md["KeyState"], md["Origin"], md["ExpirationModel"]) == (
        "Enabled",
        "EXTERNAL",
        "KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    assert "ValidTo" not in md and md["CurrentKeyMaterialId"] == material_id
    blob = ok(cli, "encrypt", "-k", key, input=b"imported secret").stdout_bytes
    assert decrypt_by_the_spec((tmp_path / "Material.bin").read_bytes(), blob) == b"imported secret"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hmac_material_imported_macs_as_pythons_hmac(cli: Any, tmp_path: Path, algorithm: str) -> None:
    key = external(cli, "HMAC_256")
    params(cli, key, tmp_path, algorithm)
    sh("openssl rand -out Material.bin 32", tmp_path)
    wrap(tmp_path, algorithm)
    assert import_material(cli, key, tmp_path).exit_code == 0
    mac = ok(cli, "hmac", "-k", key, input=b"webhook body").stdout_bytes
    known = (tmp_path / "Material.bin").read_bytes()
    assert mac == hmac.new(known, b"webhook body", "sha256").digest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ec_private_key_imported_signs_for_its_known_public_key(cli: Any, tmp_path: Path, algorithm: str) -> None:
    key = external(cli, "ECC_NIST_P256", "SIGN_VERIFY")
    params(cli, key, tmp_path, algorithm)
    sh(
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve "
        "| openssl pkcs8 -topk8 -outform der -nocrypt > Material.bin",
        tmp_path,
    )
    sh("openssl pkey -inform DER -in Material.bin -pubout -out known.pem", tmp_path)
    wrap(tmp_path, algorithm)
    assert import_material(cli, key, tmp_path).exit_code == 0
    (tmp_path / "msg").write_bytes(b"release 1.0")
    (tmp_path / "sig").write_bytes(ok(cli, "sign", "-k", key, input=b"release 1.0").stdout_bytes)
    sh("openssl dgst -sha256 -verify known.pem -signature sig msg", tmp_path)  # check=True: exit 0 or it raises


def test_rsa_private_key_needs_and_takes_aes_key_wrap(cli: Any, tmp_path: Path) -> None:
    key = external(cli, "RSA_2048", "SIGN_VERIFY")
    sh(
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
        "| openssl pkcs8 -topk8 -outform der -nocrypt > Material.bin",
        tmp_path,
    )
    sh("openssl pkey -inform DER -in Material.bin -pubout -out known.pem", tmp_path)
    params(cli, key, tmp_path, "RSA_AES_KEY_WRAP_SHA_256", "RSA_3072")
    assert len(wrap(tmp_path, "RSA_AES_KEY_WRAP_SHA_256")) > 384  # RSA-OAEP(aes key) is the first 384 bytes
    assert import_material(cli, key, tmp_path).exit_code == 0
    (tmp_path / "msg").write_bytes(b"m")
    sig = ok(cli, "sign", "-k", key, "--algorithm", "RSASSA_PKCS1_V1_5_SHA_256", input=b"m").stdout_bytes
    (tmp_path / "sig").write_bytes(sig)
    sh("openssl dgst -sha256 -verify known.pem -signature sig msg", tmp_path)
    public = ok(cli, "public-key", key).stdout_bytes
    assert public == (tmp_path / "known.pem").read_bytes()


def test_import_through_the_real_binary(sub: Any, tmp_path: Path) -> None:
    made = sub("-o", "text", "create", "--origin", "EXTERNAL")
    key = made.stdout.decode().strip()
    r = sub("import", "params", key, "--wrapping-spec", "RSA_2048", "--out-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "WrappingPublicKey.pem").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    sh("openssl rand -out Material.bin 32", tmp_path)
    wrap(tmp_path, "RSA_AES_KEY_WRAP_SHA_256")
    r = sub(
        "import-key-material", key, "--material", str(tmp_path / "EncryptedKeyMaterial.bin"),
        "--import-token", str(tmp_path / "ImportToken.bin"), "--valid-to", "90d",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    md = json.loads(sub("-o", "json", "describe", key).stdout)["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and md["ValidTo"]


# ----- errors and their exit codes -----
@pytest.fixture
def imported(cli: Any, tmp_path: Path) -> tuple[str, Path]:
    """A symmetric key with material imported from tmp_path/Material.bin."""
    key = external(cli)
    params(cli, key, tmp_path, "RSAES_OAEP_SHA_256")
    sh("openssl rand -out Material.bin 32", tmp_path)
    wrap(tmp_path, "RSAES_OAEP_SHA_256")
    assert import_material(cli, key, tmp_path).exit_code == 0
    return key, tmp_path


def fails(r: Any, code: int, name: str) -> None:
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert r.stderr.startswith(f"kmsctl: {name}: "), r.stderr
    assert "Traceback" not in r.stderr


def test_different_material_is_incorrect_key_material(cli: Any, imported: tuple[str, Path]) -> None:
    key, folder = imported
    sh("openssl rand -out Other.bin 32", folder)
    wrap(folder, "RSAES_OAEP_SHA_256", "Other.bin")
    fails(import_material(cli, key, folder), 6, "IncorrectKeyMaterialException")
    # the same material again is a reimport, and may change the expiration model
    wrap(folder, "RSAES_OAEP_SHA_256")
    assert import_material(cli, key, folder, "--valid-to", "30d").exit_code == 0


def test_material_of_the_wrong_size_is_incorrect_key_material(cli: Any, tmp_path: Path) -> None:
    key = external(cli)
    params(cli, key, tmp_path, "RSAES_OAEP_SHA_256")
    sh("openssl rand -out Material.bin 31", tmp_path)
    wrap(tmp_path, "RSAES_OAEP_SHA_256")
    fails(import_material(cli, key, tmp_path), 6, "IncorrectKeyMaterialException")


def test_a_token_for_another_key_is_invalid(cli: Any, imported: tuple[str, Path]) -> None:
    _, folder = imported
    other = external(cli)
    fails(import_material(cli, other, folder), 6, "InvalidImportTokenException")


def test_a_changed_token_is_invalid(cli: Any, imported: tuple[str, Path]) -> None:
    key, folder = imported
    token = bytearray((folder / "ImportToken.bin").read_bytes())
    token[40] ^= 1
    (folder / "ImportToken.bin").write_bytes(bytes(token))
    fails(import_material(cli, key, folder), 6, "InvalidImportTokenException")


def test_material_wrapped_for_another_wrapping_key_is_invalid_ciphertext(cli: Any, imported: tuple[str, Path]) -> None:
    key, folder = imported
    other = folder / "other"
    params(cli, key, other, "RSAES_OAEP_SHA_256")
    # the new token with the material wrapped for the first wrapping key
    (other / "EncryptedKeyMaterial.bin").write_bytes((folder / "EncryptedKeyMaterial.bin").read_bytes())
    fails(import_material(cli, key, other), 6, "InvalidCiphertextException")


def test_expiry_and_key_states(cli: Any, imported: tuple[str, Path]) -> None:
    key, folder = imported
    fails(import_material(cli, key, folder, "--valid-to", "366d"), 2, "ValidationException")
    r = cli("import", "material", key, "--material", "x", "--import-token", "y")
    assert r.exit_code == 2 and "exactly one of --valid-to WHEN and --no-expiry" in r.stderr
    fails(cli("rotation", "enable", key), 4, "UnsupportedOperationException")
    aws_key = ok(cli, "-o", "text", "create").stdout.strip()
    fails(cli("import", "params", aws_key, "--out-dir", str(folder)), 4, "UnsupportedOperationException")
    fails(cli("create", "--origin", "EXTERNAL", "--key-spec", "ML_DSA_44", "--key-usage", "SIGN_VERIFY"), 4,
          "UnsupportedOperationException")  # fmt: skip


def test_delete_then_reimport_brings_old_ciphertexts_back(cli: Any, imported: tuple[str, Path]) -> None:
    key, folder = imported
    blob = ok(cli, "encrypt", "-k", key, input=b"before").stdout_bytes
    (folder / "blob").write_bytes(blob)
    ok(cli, "import", "delete", key)
    md = json.loads(ok(cli, "-o", "json", "describe", key).stdout)["KeyMetadata"]
    assert md["KeyState"] == "PendingImport" and "CurrentKeyMaterialId" not in md
    fails(cli("decrypt", str(folder / "blob")), 4, "KMSInvalidStateException")
    assert import_material(cli, key, folder).exit_code == 0
    assert ok(cli, "decrypt", str(folder / "blob")).stdout_bytes == b"before"
    assert ok(cli, "check").exit_code == 0


# ----- expiry with no daemon (the injectable clock) -----
def _wrapped_for(kms: Any, key: str, material: bytes, tmp_path: Path) -> tuple[bytes, bytes]:
    p = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    (tmp_path / "WrappingPublicKey.der").write_bytes(p["PublicKey"])
    (tmp_path / "Material.bin").write_bytes(material)
    return p["ImportToken"], wrap(tmp_path, "RSAES_OAEP_SHA_256")


def test_expired_material_goes_to_pending_import_and_reimport_restores_it(kms: Any, clock: Any, tmp_path: Path) -> None:
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = bytes(range(32))
    token, wrapped = _wrapped_for(kms, key, material, tmp_path)
    kms.import_key_material(KeyId=key, ImportToken=token, EncryptedKeyMaterial=wrapped, ValidTo=clock() + 3 * 86400)
    md = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and md["ValidTo"].timestamp() == clock() + 3 * 86400
    blob = kms.encrypt(KeyId=key, Plaintext=b"old")["CiphertextBlob"]
    assert decrypt_by_the_spec(material, blob) == b"old"
    clock.advance(days=3, seconds=1)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"  # no daemon
    with pytest.raises(E.KMSInvalidStateException):
        kms.decrypt(CiphertextBlob=blob)
    with pytest.raises(E.ExpiredImportTokenException):  # the 24-hour token is long gone
        kms.import_key_material(KeyId=key, ImportToken=token, EncryptedKeyMaterial=wrapped, ValidTo=clock() + 86400)
    token, wrapped = _wrapped_for(kms, key, material, tmp_path)
    kms.import_key_material(
        KeyId=key, ImportToken=token, EncryptedKeyMaterial=wrapped, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"
    )
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"old"
    assert kms.check_keyring()["KeyMaterials"] == 1


def test_expiry_of_a_disabled_key_and_maintain(kms: Any, clock: Any, tmp_path: Path) -> None:
    key = kms.create_key(Origin="EXTERNAL", KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    token, wrapped = _wrapped_for(kms, key, b"k" * 48, tmp_path)
    kms.import_key_material(KeyId=key, ImportToken=token, EncryptedKeyMaterial=wrapped, ValidTo=clock() + 86400)
    kms.disable_key(KeyId=key)
    clock.advance(days=2)
    report = kms.maintain(DryRun=True)
    assert [e["KeyId"] for e in report["ExpiredKeys"]] == [key]
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert "ExpiredKeys" not in kms.maintain()


def test_new_material_for_a_symmetric_key_waits_for_an_on_demand_rotation(kms: Any, clock: Any, tmp_path: Path) -> None:
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    first, second = b"1" * 32, b"2" * 32
    token, wrapped = _wrapped_for(kms, key, first, tmp_path)
    one = kms.import_key_material(
        KeyId=key, ImportToken=token, EncryptedKeyMaterial=wrapped, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE"
    )["KeyMaterialId"]
    old = kms.encrypt(KeyId=key, Plaintext=b"one")["CiphertextBlob"]
    with pytest.raises(E.UnsupportedOperationException):
        kms.rotate_key_on_demand(KeyId=key)  # no new material yet
    token, wrapped = _wrapped_for(kms, key, second, tmp_path)
    with pytest.raises(E.ValidationException):
        kms.import_key_material(
            KeyId=key, ImportToken=token, EncryptedKeyMaterial=wrapped, ImportType="NEW_KEY_MATERIAL",
            KeyMaterialId=one, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )  # fmt: skip
    two = kms.import_key_material(
        KeyId=key, ImportToken=token, EncryptedKeyMaterial=wrapped, ImportType="NEW_KEY_MATERIAL",
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )["KeyMaterialId"]  # fmt: skip
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"] == one
    kms.rotate_key_on_demand(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"] == two
    new = kms.encrypt(KeyId=key, Plaintext=b"two")["CiphertextBlob"]
    assert decrypt_by_the_spec(second, new) == b"two"
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"one"
    assert uuid.UUID(bytes=new[2:18]) == uuid.UUID(key)


def test_import_actions_are_authorized_per_action(kms: Any, tmp_path: Path) -> None:
    """kms:GetParametersForImport and kms:ImportKeyMaterial are separate
    actions, and kms:WrappingAlgorithm is a condition key on the first."""
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "kms:GetParametersForImport", "Resource": "*",
             "Condition": {"StringEquals": {"kms:WrappingAlgorithm": "RSA_AES_KEY_WRAP_SHA_256"}}},
        ],
    }  # fmt: skip
    kms.create_principal(Name="alice", Policy=json.dumps(policy))
    kms.act_as("alice")
    try:
        kms.get_parameters_for_import(
            KeyId=key, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec="RSA_2048"
        )
        with pytest.raises(E.AccessDeniedException, match="kms:GetParametersForImport"):
            kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048")
        with pytest.raises(E.AccessDeniedException, match="kms:DeleteImportedKeyMaterial"):
            kms.delete_imported_key_material(KeyId=key)
    finally:
        kms.act_as(None)
    token, wrapped = _wrapped_for(kms, key, b"a" * 32, tmp_path)
    kms.act_as("alice")
    try:
        with pytest.raises(E.AccessDeniedException, match="kms:ImportKeyMaterial"):
            kms.import_key_material(
                KeyId=key,
                ImportToken=token,
                EncryptedKeyMaterial=wrapped,
                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
            )
    finally:
        kms.act_as(None)
    trail = json.dumps(kms.audit_events(Limit=50)["Events"])
    assert "GetParametersForImport" in trail and "ImportKeyMaterial" in trail
    for secret in (token, wrapped):  # neither the token nor the wrapped material is ever recorded
        assert base64.b64encode(secret).decode()[:40] not in trail


@pytest.mark.parametrize(
    "name", ["InvalidImportTokenException", "ExpiredImportTokenException", "IncorrectKeyMaterialException"]
)
def test_import_errors_are_exit_6(name: str) -> None:
    cls = E.by_name(name)
    assert (cls.__name__, cls.exit_code) == (name, 6)

"""kmsctl seed: local-kms's own README seed files seed a keyring as they are,
twice without change, and their known material is provably the material in
use; a wrong entry is named."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kmsctl.service import seed as S

pytest.importorskip("yaml")
SEEDS = Path(__file__).parent / "vectors" / "local-kms"
AES_KEY = "bc436485-5092-42b8-92a3-0aa8b93536dc"
ECC_KEY = "800d5768-3fd7-4edd-a4b8-4c81c3e4c147"
RSA_KEY = "ff275b92-0def-4dfc-b0f6-87c96b26c6c7"


def ok(r: Any) -> Any:
    assert r.exit_code == 0, r.stderr
    return r


def rows(home: Path) -> list[Any]:
    """Every key, alias and material row as stored."""
    from kmsctl.keyring import store

    store.close_all()
    db = sqlite3.connect(home / "keyring.db")
    try:
        return [db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in ("keys", "aliases", "materials")]
    finally:
        db.close()


def by_the_spec_decrypt(material: bytes, blob: bytes) -> bytes:
    header, salt, nonce = blob[:82], blob[50:82], blob[82:94]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"kmsctl blob v2").derive(material)
    return AESGCM(key).decrypt(nonce, blob[94:], header + b"\x00\x00\x00\x00")


def by_the_spec_encrypt(material: bytes, key_id: str, material_id: str, plaintext: bytes) -> bytes:
    """docs/FORMAT.md section 3.1, without kmsctl."""
    salt, nonce = os.urandom(32), os.urandom(12)
    header = b"\xa9\x02" + uuid.UUID(key_id).bytes + bytes.fromhex(material_id) + salt
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"kmsctl blob v2").derive(material)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header + b"\x00\x00\x00\x00")


def test_the_readme_seed_file_seeds_twice_without_change(cli: Any, keyring_home: Path) -> None:
    out = json.loads(ok(cli("-o", "json", "seed", str(SEEDS / "readme-simple.yaml"))).stdout)
    assert out["CreatedKeys"] == [AES_KEY, ECC_KEY] and out["CreatedAliases"] == ["alias/testing"]
    before = rows(keyring_home)
    again = json.loads(ok(cli("-o", "json", "seed", str(SEEDS / "readme-simple.yaml"))).stdout)
    assert again["CreatedKeys"] == [] and again["ExistingKeys"] == [AES_KEY, ECC_KEY]
    assert again["ExistingAliases"] == ["alias/testing"]
    assert rows(keyring_home) == before
    md = json.loads(ok(cli("-o", "json", "describe", "alias/testing")).stdout)["KeyMetadata"]
    assert md["KeyId"] == AES_KEY and md["KeyState"] == "Enabled"
    # the known backing key is the key in use, both ways
    known = bytes.fromhex("5cdaead27fe7da2de47945d73cd6d79e36494e73802f3cd3869f1d2cb0b5d7a9")
    blob = ok(cli("encrypt", "-k", "alias/testing", input=b"fixture")).stdout_bytes
    assert by_the_spec_decrypt(known, blob) == b"fixture"
    ok(cli("check"))


def test_past_rotations_decrypt_and_the_last_backing_key_is_current(cli: Any, tmp_path: Path) -> None:
    ok(cli("seed", str(SEEDS / "readme-rotations.yaml")))
    first = bytes.fromhex("34743777217A25432A46294A404E635266556A586E3272357538782F413F4428")
    last = bytes.fromhex("614E645267556B58703273357638792F423F4528472B4B6250655368566D5971")
    blob = ok(cli("encrypt", "-k", "alias/dev", input=b"now")).stdout_bytes
    assert by_the_spec_decrypt(last, blob) == b"now"
    materials = json.loads(ok(cli("-o", "json", "rotation", "list", AES_KEY, "--all-material")).stdout)["Rotations"]
    assert [m["KeyMaterialState"] for m in materials] == ["NON_CURRENT", "CURRENT"]
    old = by_the_spec_encrypt(first, AES_KEY, materials[0]["KeyMaterialId"], b"made elsewhere")
    (tmp_path / "old.enc").write_bytes(old)
    assert ok(cli("decrypt", str(tmp_path / "old.enc"))).stdout_bytes == b"made elsewhere"
    assert "alias/test" in ok(cli("-o", "text", "alias", "list")).stdout


def test_external_keys_with_and_without_material_and_due_rotation(cli: Any) -> None:
    ok(cli("seed", str(SEEDS / "readme-external.yaml")))
    with_material = json.loads(ok(cli("-o", "json", "describe", "5ef77041-d1e6-4af1-9a41-e49a4b45efb6")).stdout)
    assert with_material["KeyMetadata"]["Origin"] == "EXTERNAL"
    assert with_material["KeyMetadata"]["KeyState"] == "Enabled"
    pending = json.loads(ok(cli("-o", "json", "describe", "5d05267f-bb87-4d0b-8594-295a4371d414")).stdout)
    assert pending["KeyMetadata"]["KeyState"] == "PendingImport"
    # NextKeyRotation in the past: rotated at first use, as local-kms does
    rotations = json.loads(ok(cli("-o", "json", "rotation", "list", AES_KEY)).stdout)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"]
    material = bytes.fromhex("b200b324de29609558e13780160e38fc193f6bec9f9dba58a2be5b37d5098d74")
    blob = ok(cli("encrypt", "-k", "5ef77041-d1e6-4af1-9a41-e49a4b45efb6", input=b"x")).stdout_bytes
    assert by_the_spec_decrypt(material, blob) == b"x"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_seeded_pem_keys_sign_for_their_known_public_keys(cli: Any, tmp_path: Path) -> None:
    import yaml

    ok(cli("seed", str(SEEDS / "readme-asymmetric.yaml")))
    doc = yaml.safe_load((SEEDS / "readme-asymmetric.yaml").read_text())
    (tmp_path / "msg").write_bytes(b"signed")
    for group, key, alg in (("Rsa", RSA_KEY, "RSASSA_PKCS1_V1_5_SHA_256"), ("Ecc", ECC_KEY, "ECDSA_SHA_256")):
        (tmp_path / "key.pem").write_text(doc["Keys"]["Asymmetric"][group][0]["PrivateKeyPem"])
        subprocess.run(["openssl", "pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"], cwd=tmp_path, check=True)
        sig = ok(cli("sign", "-k", key, "--algorithm", alg, input=b"signed")).stdout_bytes
        (tmp_path / "sig").write_bytes(sig)
        subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "msg"],
            cwd=tmp_path, check=True, capture_output=True,
        )  # fmt: skip


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "seed.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (f"Keys:\n  Symmetric:\n    Aes:\n      - Metadata: {{KeyId: {AES_KEY}}}\n        BackingKeys: [abcd]\n",
         f"Keys.Symmetric.Aes[0] ({AES_KEY}): BackingKeys[0] is not 64 hex digits"),
        ("Keys:\n  Symmetric:\n    Aes:\n      - Metadata: {KeyId: nope}\n",
         "Keys.Symmetric.Aes[0]: Metadata.KeyId 'nope'"),
        (f"Keys:\n  Symmetric:\n    Aes:\n      - Metadata: {{KeyId: {AES_KEY}}}\n        Backingkeys: []\n",
         "unknown field 'Backingkeys'"),
        ("Aliases:\n  - {AliasName: testing, TargetKeyId: " + AES_KEY + "}\n", "Aliases[0]: AliasName"),
        (f"Keys:\n  Asymmetric:\n    Ecc:\n      - Metadata: {{KeyId: {ECC_KEY}}}\n        PrivateKeyPem: junk\n",
         f"Keys.Asymmetric.Ecc[0] ({ECC_KEY}): PrivateKeyPem"),
        ("Keys: [\n", "not valid YAML (line"),
    ],
)  # fmt: skip
def test_a_wrong_entry_is_named_and_nothing_is_seeded(cli: Any, tmp_path: Path, text: str, named: str) -> None:
    r = cli("seed", write(tmp_path, text))
    assert r.exit_code == 2, r.stderr
    assert r.stderr.startswith("kmsctl: ValidationException: ") and named in r.stderr, r.stderr
    assert ok(cli("-o", "text", "list")).stdout == ""


def test_an_existing_key_with_other_material_is_refused(cli: Any, tmp_path: Path) -> None:
    ok(cli("seed", str(SEEDS / "readme-simple.yaml")))
    r = cli("seed", str(SEEDS / "readme-rotations.yaml"))
    assert r.exit_code == 7 and AES_KEY in r.stderr


def test_without_pyyaml_the_command_says_how_to_install_it(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    r = cli("seed", str(SEEDS / "readme-simple.yaml"))
    assert r.exit_code == 2 and "pip install 'kmsctl[seed]'" in r.stderr


def test_seed_file_for_the_server_and_tags(kms: Any, tmp_path: Path) -> None:
    text = (
        f"Keys:\n  Symmetric:\n    Aes:\n      - Metadata: {{KeyId: {AES_KEY}, Enabled: false}}\n"
        f"        BackingKeys: [{'11' * 32}]\n        Tags: [{{TagKey: team, TagValue: web}}]\n"
    )
    out = S.seed_file(kms, write(tmp_path, text))
    assert out["CreatedKeys"] == [AES_KEY]
    assert kms.list_resource_tags(KeyId=AES_KEY)["Tags"] == [{"TagKey": "team", "TagValue": "web"}]
    assert kms.describe_key(KeyId=AES_KEY)["KeyMetadata"]["KeyState"] == "Disabled"


def test_seed_through_the_real_binary(sub: Any) -> None:
    r = sub("-o", "text", "seed", str(SEEDS / "readme-simple.yaml"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines()[0] == f"created\tkey\t{AES_KEY}"

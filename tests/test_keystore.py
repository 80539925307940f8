"""Custom key stores on SoftHSM2: the store's states and errors, keys made and
used inside the token, what happens while disconnected, on deletion, and
where the PIN is not. A fresh token per test (tests/hsm.py)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock
from hsm import MODULE, SoftToken, token_fixture  # noqa: F401 (the token fixture)

from kmsctl import errors as E
from kmsctl.crypto import blob
from kmsctl.service import LocalKMS

VECTOR = Path(__file__).parent / "vectors" / "ciphertext_blob_v3.json"


def make_store(kms: LocalKMS, token: SoftToken, name: str = "hsm", connect: bool = True) -> str:
    sid = kms.create_custom_key_store(CustomKeyStoreName=name, Pkcs11Uri=token.uri, KeyStorePassword=token.pin)[
        "CustomKeyStoreId"
    ]
    if connect:
        kms.connect_custom_key_store(CustomKeyStoreId=sid)
    return str(sid)


def entry(kms: LocalKMS, sid: str) -> dict[str, Any]:
    return dict(kms.describe_custom_key_stores(CustomKeyStoreId=sid)["CustomKeyStores"][0])


def store_key(kms: LocalKMS, sid: str) -> dict[str, Any]:
    return dict(kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=sid)["KeyMetadata"])


def token_object(token: SoftToken, key_id: bytes) -> dict[str, bool] | None:
    """The token object with CKA_ID key_id read back through python-pkcs11 itself, outside kmsctl."""
    import pkcs11

    from kmsctl.hsm.token import close_all

    close_all()  # SoftHSM keeps one view of the token a process: read it afresh
    try:
        tok = pkcs11.lib(MODULE).get_token(token_label=token.label)
        with tok.open(user_pin=token.pin) as session:
            found = list(session.get_objects({pkcs11.Attribute.ID: key_id}))
            if not found:
                return None
            (obj,) = found
            return {
                "extractable": bool(obj[pkcs11.Attribute.EXTRACTABLE]),
                "sensitive": bool(obj[pkcs11.Attribute.SENSITIVE]),
                "token": bool(obj[pkcs11.Attribute.TOKEN]),
            }
    finally:
        pkcs11.unload(MODULE)  # else the next test's SOFTHSM2_CONF is never read


def destroy_object(token: SoftToken, key_id: bytes) -> None:
    import pkcs11

    from kmsctl.hsm.token import close_all

    close_all()
    try:
        tok = pkcs11.lib(MODULE).get_token(token_label=token.label)
        with tok.open(user_pin=token.pin, rw=True) as session:
            for obj in session.get_objects({pkcs11.Attribute.ID: key_id}):
                obj.destroy()
    finally:
        pkcs11.unload(MODULE)


# ----- the store: states and errors -----
def test_store_lifecycle_states_and_errors(kms: LocalKMS, token: SoftToken) -> None:
    sid = make_store(kms, token, connect=False)
    assert re.fullmatch(r"cks-[0-9a-f]{17}", sid)
    e = entry(kms, sid)
    assert e["ConnectionState"] == "DISCONNECTED" and "ConnectionErrorCode" not in e
    assert e["CustomKeyStoreType"] == "AWS_CLOUDHSM" and e["CustomKeyStoreName"] == "hsm"
    assert re.fullmatch(r"cluster-[2-7a-z]{16}", e["CloudHsmClusterId"])
    assert e["Pkcs11Uri"] == f"pkcs11:token={token.label}?module-path={MODULE}"
    by_name = kms.describe_custom_key_stores(CustomKeyStoreName="hsm")["CustomKeyStores"]
    assert [s["CustomKeyStoreId"] for s in by_name] == [sid]
    with pytest.raises(E.CustomKeyStoreNameInUseException):
        kms.create_custom_key_store(CustomKeyStoreName="hsm", Pkcs11Uri=token.uri, KeyStorePassword=token.pin)
    with pytest.raises(E.CloudHsmClusterInUseException):  # one store a token, as one a cluster
        kms.create_custom_key_store(CustomKeyStoreName="again", Pkcs11Uri=token.uri, KeyStorePassword=token.pin)
    with pytest.raises(E.CustomKeyStoreInvalidStateException):
        kms.disconnect_custom_key_store(CustomKeyStoreId=sid)  # DISCONNECTED already

    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    assert entry(kms, sid)["ConnectionState"] == "CONNECTED"
    kms.connect_custom_key_store(CustomKeyStoreId=sid)  # connected: nothing to do, as AWS
    with pytest.raises(E.CustomKeyStoreInvalidStateException):  # the PIN only while disconnected
        kms.update_custom_key_store(CustomKeyStoreId=sid, KeyStorePassword=token.pin)
    kms.update_custom_key_store(CustomKeyStoreId=sid, NewCustomKeyStoreName="renamed")  # the name may change
    assert entry(kms, sid)["CustomKeyStoreName"] == "renamed"
    with pytest.raises(E.CustomKeyStoreInvalidStateException):
        kms.delete_custom_key_store(CustomKeyStoreId=sid)  # connected
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    kms.delete_custom_key_store(CustomKeyStoreId=sid)
    with pytest.raises(E.CustomKeyStoreNotFoundException):
        kms.describe_custom_key_stores(CustomKeyStoreId=sid)
    assert kms.describe_custom_key_stores() == {"CustomKeyStores": [], "Truncated": False}


def test_create_checks_the_token_and_the_type(kms: LocalKMS, token: SoftToken) -> None:
    with pytest.raises(E.CloudHsmClusterNotFoundException, match="no token"):
        kms.create_custom_key_store(
            CustomKeyStoreName="x", Pkcs11Uri=f"pkcs11:token=nope?module-path={MODULE}", KeyStorePassword=token.pin
        )
    with pytest.raises(E.KMSError, match="wrong PIN"):
        kms.create_custom_key_store(CustomKeyStoreName="x", Pkcs11Uri=token.uri, KeyStorePassword="wrong-pin")
    with pytest.raises(E.UnsupportedOperationException):
        kms.create_custom_key_store(CustomKeyStoreName="x", CustomKeyStoreType="EXTERNAL_KEY_STORE")
    assert kms.describe_custom_key_stores()["CustomKeyStores"] == []


def test_wrong_pin_fails_the_connection_until_updated(kms: LocalKMS, token: SoftToken) -> None:
    sid = make_store(kms, token, connect=False)
    kms.update_custom_key_store(CustomKeyStoreId=sid, KeyStorePassword="not-the-pin")
    kms.connect_custom_key_store(CustomKeyStoreId=sid)  # succeeds as a call, as AWS's does
    e = entry(kms, sid)
    assert (e["ConnectionState"], e["ConnectionErrorCode"]) == ("FAILED", "INVALID_CREDENTIALS")
    with pytest.raises(E.CustomKeyStoreInvalidStateException):
        kms.connect_custom_key_store(CustomKeyStoreId=sid)  # FAILED: disconnect first
    with pytest.raises(E.CustomKeyStoreInvalidStateException):
        kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=sid)
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    kms.update_custom_key_store(CustomKeyStoreId=sid, KeyStorePassword=token.pin)
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    assert "ConnectionErrorCode" not in entry(kms, sid) and entry(kms, sid)["ConnectionState"] == "CONNECTED"


def test_describe_pages_with_limit_and_marker(kms: LocalKMS, token: SoftToken, tmp_path: Path) -> None:
    from hsm import init_token

    from kmsctl.hsm.token import close_all

    sids = [make_store(kms, token, "a", connect=False)]
    for label in ("second", "third"):
        init_token(token.conf, label, token.pin)
        close_all()  # the module lists its tokens afresh
        uri = f"pkcs11:token={label}?module-path={MODULE}"
        sids.append(kms.create_custom_key_store(CustomKeyStoreName=label, Pkcs11Uri=uri, KeyStorePassword=token.pin)[
            "CustomKeyStoreId"
        ])  # fmt: skip
    first = kms.describe_custom_key_stores(Limit=2)
    assert first["Truncated"] and len(first["CustomKeyStores"]) == 2
    rest = kms.describe_custom_key_stores(Limit=2, Marker=first["NextMarker"])
    assert not rest["Truncated"] and "NextMarker" not in rest
    assert [s["CustomKeyStoreId"] for s in first["CustomKeyStores"] + rest["CustomKeyStores"]] == sids
    with pytest.raises(E.InvalidMarkerException):
        kms.describe_custom_key_stores(Marker="bogus")


# ----- keys in the store -----
def test_store_key_round_trips_in_the_token(kms: LocalKMS, token: SoftToken) -> None:
    sid = make_store(kms, token)
    md = store_key(kms, sid)
    assert (md["Origin"], md["CustomKeyStoreId"], md["KeyState"]) == ("AWS_CLOUDHSM", sid, "Enabled")
    assert md["CloudHsmClusterId"] == entry(kms, sid)["CloudHsmClusterId"]
    key = md["KeyId"]
    ctx = {"app": "billing"}
    ct = kms.encrypt(KeyId=key, Plaintext=b"in the token", EncryptionContext=ctx)["CiphertextBlob"]
    parsed = blob.parse(ct)
    assert (ct[1], parsed.store_id, parsed.key_id) == (3, sid, key)  # the blob names the store
    assert ct[50:71] == sid.encode() and len(ct) == blob.V3_OVERHEAD + len(b"in the token")
    out = kms.decrypt(CiphertextBlob=ct, EncryptionContext=ctx)  # no KeyId: the blob finds it
    assert out["Plaintext"] == b"in the token" and out["KeyId"].endswith(key)
    with pytest.raises(E.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=ct, EncryptionContext={"app": "other"})
    tampered = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(E.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=tampered, EncryptionContext=ctx)

    local = kms.create_key()["KeyMetadata"]["KeyId"]
    moved = kms.re_encrypt(CiphertextBlob=ct, SourceEncryptionContext=ctx, DestinationKeyId=local)
    assert moved["CiphertextBlob"][1] == 2
    back = kms.re_encrypt(CiphertextBlob=moved["CiphertextBlob"], DestinationKeyId=key)
    assert back["CiphertextBlob"][1] == 3 and kms.decrypt(CiphertextBlob=back["CiphertextBlob"])["Plaintext"] == (
        b"in the token"
    )
    dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=ctx)
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    no_pt = kms.generate_data_key_without_plaintext(KeyId=key, NumberOfBytes=16)
    assert "Plaintext" not in no_pt and len(kms.decrypt(CiphertextBlob=no_pt["CiphertextBlob"])["Plaintext"]) == 16
    # the token object: sensitive, never extractable, read back outside kmsctl's code
    token_id = bytes.fromhex(parsed.material_id)
    assert token_object(token, token_id) == {"extractable": False, "sensitive": True, "token": True}


def test_store_keys_refuse_what_aws_refuses(kms: LocalKMS, token: SoftToken) -> None:
    sid = make_store(kms, token)
    key = store_key(kms, sid)["KeyId"]
    with pytest.raises(E.UnsupportedOperationException):
        kms.generate_data_key_pair(KeyId=key, KeyPairSpec="ECC_NIST_P256")
    with pytest.raises(E.UnsupportedOperationException):
        kms.generate_data_key_pair_without_plaintext(KeyId=key, KeyPairSpec="ECC_NIST_P256")
    with pytest.raises(E.UnsupportedOperationException):
        kms.enable_key_rotation(KeyId=key)
    with pytest.raises(E.UnsupportedOperationException):
        kms.rotate_key_on_demand(KeyId=key)
    with pytest.raises(E.UnsupportedOperationException):
        kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    with pytest.raises(E.UnsupportedOperationException):
        kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=sid, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    with pytest.raises(E.ValidationException):
        kms.create_key(CustomKeyStoreId=sid)  # Origin AWS_KMS
    with pytest.raises(E.CustomKeyStoreNotFoundException):
        kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId="cks-00000000000000000")


def test_disconnected_store_keys_are_listed_but_unusable(kms: LocalKMS, token: SoftToken) -> None:
    sid = make_store(kms, token)
    key = store_key(kms, sid)["KeyId"]
    ct = kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    assert key in [k["KeyId"] for k in kms.list_keys()["Keys"]]
    md = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"]) == ("Unavailable", False)
    for call in (
        lambda: kms.encrypt(KeyId=key, Plaintext=b"x"),
        lambda: kms.decrypt(CiphertextBlob=ct),
        lambda: kms.generate_data_key(KeyId=key, KeySpec="AES_128"),
    ):
        with pytest.raises(E.KMSInvalidStateException, match="DISCONNECTED"):
            call()
    with pytest.raises(E.CustomKeyStoreHasCMKsException):
        kms.delete_custom_key_store(CustomKeyStoreId=sid)
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"x"


def test_ciphertext_does_not_decrypt_once_the_token_key_is_gone(kms: LocalKMS, token: SoftToken) -> None:
    sid = make_store(kms, token)
    key = store_key(kms, sid)["KeyId"]
    ct = kms.encrypt(KeyId=key, Plaintext=b"gone")["CiphertextBlob"]
    destroy_object(token, bytes.fromhex(blob.parse(ct).material_id))
    with pytest.raises(E.KMSInvalidStateException, match="no key with id"):
        kms.decrypt(CiphertextBlob=ct)


def test_deletion_window_destroys_the_token_object(kms: LocalKMS, token: SoftToken, clock: FakeClock) -> None:
    sid = make_store(kms, token)
    key = store_key(kms, sid)["KeyId"]
    token_id = bytes.fromhex(blob.parse(kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]).material_id)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    with pytest.raises(E.CustomKeyStoreHasCMKsException):  # a key pending deletion counts, as AWS
        kms.delete_custom_key_store(CustomKeyStoreId=sid)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    assert token_object(token, token_id) is not None
    clock.advance(days=8)
    with pytest.raises(E.NotFoundException):
        kms.describe_key(KeyId=key)  # the due deletion ran first
    assert token_object(token, token_id) is None
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    kms.delete_custom_key_store(CustomKeyStoreId=sid)


def test_deletion_while_disconnected_leaves_the_token_object(kms: LocalKMS, token: SoftToken, clock: FakeClock) -> None:
    sid = make_store(kms, token)
    key = store_key(kms, sid)["KeyId"]
    token_id = bytes.fromhex(blob.parse(kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]).material_id)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    clock.advance(days=8)
    kms.delete_custom_key_store(CustomKeyStoreId=sid)  # the key is gone, so the store may go
    assert token_object(token, token_id) is not None  # left for the token's owner, as AWS leaves it


# ----- the blob's version 3, as docs/FORMAT.md 3.6 specifies it -----
def test_blob_v3_follows_its_vector() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    v = json.loads(VECTOR.read_text())
    aes = AESGCM(bytes.fromhex(v["token_key_hex"]))
    nonce = bytes.fromhex(v["nonce_hex"])
    made = blob.seal_in_store(
        lambda n, pt, aad: aes.encrypt(n, pt, aad),
        v["key_id"],
        v["token_key_id"],
        v["custom_key_store_id"],
        v["plaintext"].encode(),
        v["encryption_context"],
        nonce=nonce,
    )
    assert made.hex() == v["blob_hex"]
    # and from the text alone: header || nonce || AES-GCM(header || canonical(context))
    head = bytes([0xA9, 3]) + bytes.fromhex(v["key_id"].replace("-", "")) + bytes.fromhex(v["token_key_id"])
    head += v["custom_key_store_id"].encode()
    assert made[:71] == head and made[71:83] == nonce
    aad = bytes.fromhex(v["aad_hex"])
    assert aad.startswith(head) and made[83:] == aes.encrypt(nonce, v["plaintext"].encode(), aad)
    parsed = blob.parse(made)
    assert (parsed.version, parsed.store_id, parsed.material_id) == (3, v["custom_key_store_id"], v["token_key_id"])
    opened = blob.open_in_store(lambda n, ct, aad: aes.decrypt(n, ct, aad), parsed, v["encryption_context"])
    assert opened == v["plaintext"].encode()


# ----- the command line -----
def test_keystore_commands_through_the_cli(cli: Any, token: SoftToken) -> None:
    env = {"KMSCTL_PKCS11_PIN_FILE": str(token.pin_file)}
    made = cli("-o", "text", "keystore", "create", "hsm", "--pkcs11", token.uri, env=env)
    assert made.exit_code == 0, made.stderr
    sid = made.stdout.split("\t")[0]
    assert sid.startswith("cks-") and "\tDISCONNECTED\t" in made.stdout
    assert cli("keystore", "create", "hsm", "--pkcs11", token.uri, env=env).exit_code == 7  # name in use
    listed = json.loads(cli("-o", "json", "keystore", "list").stdout)
    assert [s["CustomKeyStoreId"] for s in listed["CustomKeyStores"]] == [sid]
    assert cli("create", "--custom-key-store", "hsm").exit_code == 4  # not connected
    assert cli("keystore", "connect", "hsm").exit_code == 0
    assert cli("-o", "text", "keystore", "list", "hsm").stdout.split("\t")[2] == "CONNECTED"
    key = cli("-o", "text", "create", "--custom-key-store", "hsm").stdout.strip()
    described = json.loads(cli("-o", "json", "describe", key).stdout)["KeyMetadata"]
    assert (described["Origin"], described["CustomKeyStoreId"]) == ("AWS_CLOUDHSM", sid)
    ct = cli("encrypt", "-k", key, "-c", "a=b", input=b"secret")
    assert ct.exit_code == 0, ct.stderr
    assert cli("decrypt", "-c", "a=b", input=ct.stdout_bytes).stdout == "secret"
    assert cli("data-key-pair", "-k", key, "--spec", "ECC_NIST_P256").exit_code == 4
    assert cli("rotation", "enable", key).exit_code == 4
    assert cli("keystore", "delete", "hsm").exit_code == 4  # connected
    assert cli("keystore", "disconnect", "hsm").exit_code == 0
    refused = cli("decrypt", "-c", "a=b", input=ct.stdout_bytes)
    assert refused.exit_code == 4 and "KMSInvalidStateException" in refused.stderr
    assert cli("keystore", "delete", "hsm").exit_code == 4  # holds a key
    assert "CustomKeyStoreHasCMKsException" in cli("keystore", "delete", "hsm").stderr
    assert cli("keystore", "delete", "nope").exit_code == 3
    assert cli("keystore", "update", "hsm", "--new-name", "h2").exit_code == 0
    wrong = token.pin_file.with_name("wrong.pin")
    wrong.write_text("wrong-pin\n")
    assert cli("keystore", "update", "h2", "--pin-file", str(wrong)).exit_code == 0
    failed = cli("keystore", "connect", "h2")
    assert failed.exit_code == 4 and "INVALID_CREDENTIALS" in failed.stderr
    assert cli("describe-custom-key-stores", "-o", "json").exit_code == 0  # the aws kms name


def test_real_binary_pin_never_in_argv_files_or_audit(sub: Any, token: SoftToken, keyring_home: Path) -> None:
    env = {**token.env, "KMSCTL_PKCS11_PIN": token.pin}
    made = sub("-o", "text", "keystore", "create", "hsm", "--pkcs11", token.uri, env=env)
    assert made.returncode == 0, made.stderr
    assert sub("keystore", "connect", "hsm", env=token.env).returncode == 0  # the kept PIN: none given
    key = sub("-o", "text", "create", "--custom-key-store", "hsm", env=token.env).stdout.decode().strip()
    ct = sub("encrypt", "-k", key, input=b"through the binary", env=token.env)
    assert ct.returncode == 0, ct.stderr
    pt = sub("decrypt", input=ct.stdout, env=token.env)
    assert pt.stdout == b"through the binary", pt.stderr
    no_pin = sub("keystore", "create", "other", "--pkcs11", token.uri, "--no-input", env=token.env)
    assert no_pin.returncode == 5 and b"no PIN" in no_pin.stderr
    records = sub("audit", "list", "-o", "json", env=token.env)
    assert records.returncode == 0
    pin = token.pin.encode()
    for path in keyring_home.rglob("*"):
        if path.is_file():
            assert pin not in path.read_bytes(), path
    for stream in (made.stdout, made.stderr, records.stdout):
        assert pin not in stream
    events = json.loads(records.stdout)
    events = events if isinstance(events, list) else events.get("Events", [])
    sid = made.stdout.decode().split("\t")[0]
    encrypts = [e for e in events if e.get("eventName") == "Encrypt"]
    assert encrypts and encrypts[-1].get("additionalEventData") == {"customKeyStoreId": sid}
    creates = [e for e in events if e.get("eventName") == "CreateCustomKeyStore"]
    assert creates and "keyStorePassword" not in (creates[0].get("requestParameters") or {})


def test_boto3_over_serve_round_trip(tmp_path: Path, token: SoftToken) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("boto3")
    from server_helpers import ALLOW_ALL, boto3_client, make_served_keyring, start_server, stop_server

    home, passfile, keys = make_served_keyring(tmp_path, {"alice": ALLOW_ALL})
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0")
    try:
        client = boto3_client(url, *keys["alice"])
        sid = client.create_custom_key_store(
            CustomKeyStoreName="wire", CloudHsmClusterId=token.uri, KeyStorePassword=token.pin
        )["CustomKeyStoreId"]
        client.connect_custom_key_store(CustomKeyStoreId=sid)
        (store,) = client.describe_custom_key_stores(CustomKeyStoreName="wire")["CustomKeyStores"]
        assert store["ConnectionState"] == "CONNECTED" and store["CustomKeyStoreType"] == "AWS_CLOUDHSM"
        md = client.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=sid)["KeyMetadata"]
        assert md["CustomKeyStoreId"] == sid and md["CloudHsmClusterId"] == store["CloudHsmClusterId"]
        ct = client.encrypt(KeyId=md["KeyId"], Plaintext=b"over the wire")["CiphertextBlob"]
        assert client.decrypt(CiphertextBlob=ct)["Plaintext"] == b"over the wire"
        client.disconnect_custom_key_store(CustomKeyStoreId=sid)
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError) as refused:
            client.delete_custom_key_store(CustomKeyStoreId=sid)
        assert refused.value.response["Error"]["Code"] == "CustomKeyStoreHasCMKsException"
        with pytest.raises(ClientError) as missing:
            client.connect_custom_key_store(CustomKeyStoreId="cks-00000000000000000")
        assert missing.value.response["Error"]["Code"] == "CustomKeyStoreNotFoundException"
        assert base64.b64encode(token.pin.encode()) not in (home / "keyring.db").read_bytes()
    finally:
        assert stop_server(proc) == 0

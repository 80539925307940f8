"""A running ``kmsctl serve`` sees what the command line changes at once.

Each server worker keeps, per database connection, the rows it read (access
keys, principals, keys, grants, materials) for as long as nothing commits
(kmsctl.keyring.store.Database.cached). Here the server is warmed up with
requests, then another process (the installed ``kmsctl``) revokes a grant,
replaces a policy, disables a key or deletes an access key, and the very next
request must be decided on the new state. Afterwards every request has its
audit record and the chain verifies."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gunicorn")
pytest.importorskip("boto3")

from botocore.exceptions import ClientError
from server_helpers import ALLOW_ALL, Served, boto3_client, kmsctl_cmd, make_served_keyring, start_server, stop_server

DESCRIBE_ONLY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*"}]}
)
WARM = 4  # requests before each change: enough for every worker's cache to hold the rows


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("changes")
    home, passfile, keys = make_served_keyring(
        root, {"alice": ALLOW_ALL, "bob": DESCRIBE_ONLY, "carol": ALLOW_ALL, "dan": ALLOW_ALL}
    )
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0", "--workers", "2")
    s = Served(url, home, passfile, proc, keys)
    yield s
    assert stop_server(proc) == 0


def kms(served: Served, who: str) -> Any:
    akid, secret = served.keys[who]
    return boto3_client(served.url, akid, secret)


def cli(served: Served, *args: str, stdin: str | None = None) -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}, **served.env()}
    out = subprocess.run(
        [*kmsctl_cmd(), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return str(err.value.response["Error"]["Code"])


def test_a_grant_revoked_by_the_cli_denies_the_next_request(served: Served) -> None:
    key = kms(served, "alice").create_key()["KeyMetadata"]["KeyId"]
    bob = kms(served, "bob")
    assert error_code(bob.encrypt, KeyId=key, Plaintext=b"x") == "AccessDeniedException"
    grant_id = cli(served, "grant", "create", key, "--grantee", "bob", "--operation", "Encrypt", "-o", "text").split()[
        0
    ]
    for _ in range(WARM):  # the grant takes effect at once too
        assert bob.encrypt(KeyId=key, Plaintext=b"x")["KeyId"].endswith(key)
    cli(served, "grant", "revoke", key, grant_id)
    assert error_code(bob.encrypt, KeyId=key, Plaintext=b"x") == "AccessDeniedException"


def test_an_identity_policy_replaced_by_the_cli_decides_the_next_request(served: Served, tmp_path: Path) -> None:
    key = kms(served, "alice").create_key()["KeyMetadata"]["KeyId"]
    carol = kms(served, "carol")
    for _ in range(WARM):
        carol.encrypt(KeyId=key, Plaintext=b"x")
    cli(served, "principal", "policy", "put", "carol", "-", stdin=DESCRIBE_ONLY)
    assert error_code(carol.encrypt, KeyId=key, Plaintext=b"x") == "AccessDeniedException"
    assert carol.describe_key(KeyId=key)["KeyMetadata"]["KeyId"] == key
    cli(served, "principal", "policy", "put", "carol", "-", stdin=ALLOW_ALL)
    assert carol.encrypt(KeyId=key, Plaintext=b"x")["KeyId"].endswith(key)


def test_a_key_policy_put_and_a_key_disabled_by_the_cli_apply_at_once(served: Served) -> None:
    alice = kms(served, "alice")
    key = alice.create_key()["KeyMetadata"]["KeyId"]
    blob = alice.encrypt(KeyId=key, Plaintext=b"secret")["CiphertextBlob"]
    for _ in range(WARM):
        assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    deny_decrypt = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"},
        ],
    }
    cli(served, "policy", "put", key, "-", stdin=json.dumps(deny_decrypt))
    assert error_code(alice.decrypt, CiphertextBlob=blob) == "AccessDeniedException"
    cli(served, "policy", "reset", key)
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    cli(served, "disable", key)
    assert error_code(alice.decrypt, CiphertextBlob=blob) == "DisabledException"
    assert error_code(alice.encrypt, KeyId=key, Plaintext=b"x") == "DisabledException"


def test_an_access_key_deleted_by_the_cli_is_refused_next(served: Served) -> None:
    dan = kms(served, "dan")
    for _ in range(WARM):
        dan.generate_random(NumberOfBytes=8)
    cli(served, "principal", "access-key", "delete", "dan", served.keys["dan"][0])
    assert error_code(dan.generate_random, NumberOfBytes=8) == "UnrecognizedClientException"


def test_every_request_has_its_record_and_the_chain_verifies(served: Served) -> None:
    alice = kms(served, "alice")
    key = alice.create_key()["KeyMetadata"]["KeyId"]
    ids = [alice.encrypt(KeyId=key, Plaintext=b"x")["ResponseMetadata"]["RequestId"] for _ in range(10)]
    checked = int(cli(served, "audit", "verify", "-o", "text").split()[0])  # exit 0: the chain holds
    assert checked >= 10
    listed = json.loads(cli(served, "audit", "list", "--key", key, "-o", "json", "--limit", "100"))
    events = listed if isinstance(listed, list) else listed.get("Events", [])
    recorded = {e.get("requestID") for e in events if e.get("eventName") == "Encrypt"}
    assert set(ids) <= recorded

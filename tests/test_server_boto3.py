"""``kmsctl serve`` as a real subprocess on loopback, driven by boto3 with a
principal's access key: round trips, AWS's errors over the wire, refused
signatures, policy decisions as ``policy simulate`` gives them, and the audit
records each request leaves."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gunicorn")
pytest.importorskip("boto3")

from botocore.exceptions import ClientError
from server_helpers import (
    ALLOW_ALL,
    Served,
    boto3_client,
    kmsctl_cmd,
    make_served_keyring,
    post,
    raw_exchange,
    signed_headers,
    start_server,
    stop_server,
)

DENY_BOTO3_ENCRYPT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": {"StringLike": {"aws:UserAgent": "*Boto3*"}},
            },
        ],
    }
)
TRANSPORT_CONDITIONS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "kms:*",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}},
            },
            {
                "Effect": "Deny",
                "Action": "kms:GenerateRandom",
                "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Effect": "Deny",
                "Action": "kms:GenerateDataKey",
                "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
            },
        ],
    }
)
DESCRIBE_ONLY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*"}]}
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served")
    home, passfile, keys = make_served_keyring(
        root, {"alice": ALLOW_ALL, "bob": DESCRIBE_ONLY, "dave": DENY_BOTO3_ENCRYPT, "erin": TRANSPORT_CONDITIONS}
    )
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0")
    s = Served(url, home, passfile, proc, keys)
    yield s
    assert stop_server(proc) == 0


def kms(served: Served, who: str = "alice", **kw: Any) -> Any:
    akid, secret = served.keys[who]
    return boto3_client(served.url, akid, secret, **kw)


def cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}, **served.env()}
    return subprocess.run([*kmsctl_cmd(), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def audit(served: Served) -> list[dict[str, Any]]:
    out = cli(served, "audit", "list", "-o", "json", "--limit", "5000")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    return list(doc if isinstance(doc, list) else doc.get("Events", []))


# ----- round trips -----
def test_symmetric_round_trips(served: Served) -> None:
    c = kms(served)
    key = c.create_key(Description="served")["KeyMetadata"]
    assert key["Arn"].startswith("arn:aws:kms:us-east-1:111122223333:key/")
    assert isinstance(key["CreationDate"], datetime)
    ct = c.encrypt(KeyId=key["KeyId"], Plaintext=b"hello", EncryptionContext={"app": "x"})
    assert ct["KeyId"] == key["Arn"]
    assert c.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext={"app": "x"})["Plaintext"] == b"hello"
    dk = c.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    assert len(dk["Plaintext"]) == 32
    assert c.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
    wo = c.generate_data_key_without_plaintext(KeyId=key["KeyId"], NumberOfBytes=16)
    assert "Plaintext" not in wo
    other = c.create_key()["KeyMetadata"]["KeyId"]
    re = c.re_encrypt(CiphertextBlob=ct["CiphertextBlob"], SourceEncryptionContext={"app": "x"}, DestinationKeyId=other)
    assert c.decrypt(CiphertextBlob=re["CiphertextBlob"])["Plaintext"] == b"hello"
    assert len(c.generate_random(NumberOfBytes=24)["Plaintext"]) == 24
    with pytest.raises(ClientError) as err:
        c.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext={"app": "y"})
    assert err.value.response["Error"]["Code"] == "InvalidCiphertextException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_aliases_listing_tags_and_state(served: Served) -> None:
    c = kms(served)
    key = c.create_key(Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]["KeyId"]
    c.create_alias(AliasName="alias/served-app", TargetKeyId=key)
    assert c.describe_key(KeyId="alias/served-app")["KeyMetadata"]["KeyId"] == key
    names = [a["AliasName"] for a in c.list_aliases(KeyId=key)["Aliases"]]
    assert names == ["alias/served-app"]
    c.tag_resource(KeyId=key, Tags=[{"TagKey": "env", "TagValue": "ci"}])
    tags = {t["TagKey"]: t["TagValue"] for t in c.list_resource_tags(KeyId=key)["Tags"]}
    assert tags == {"team": "a", "env": "ci"}
    pages = list(c.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1}))
    assert len(pages) >= 2 and key in {k["KeyId"] for p in pages for k in p["Keys"]}
    c.disable_key(KeyId=key)
    with pytest.raises(ClientError) as err:
        c.encrypt(KeyId=key, Plaintext=b"x")
    assert err.value.response["Error"]["Code"] == "DisabledException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    c.enable_key(KeyId=key)
    deletion = c.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)["DeletionDate"]
    assert deletion > datetime.now(UTC) + timedelta(days=6)
    c.cancel_key_deletion(KeyId=key)
    c.delete_alias(AliasName="alias/served-app")
    with pytest.raises(ClientError) as err:
        c.describe_key(KeyId="alias/served-app")
    assert err.value.response["Error"]["Code"] == "NotFoundException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_sign_verify_mac_and_public_key(served: Served) -> None:
    c = kms(served)
    key = c.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    sig = c.sign(KeyId=key, Message=b"msg", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert c.verify(KeyId=key, Message=b"msg", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    with pytest.raises(ClientError) as err:
        c.verify(KeyId=key, Message=b"other", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
    assert err.value.response["Error"]["Code"] == "KMSInvalidSignatureException"
    pub = c.get_public_key(KeyId=key)
    assert pub["KeySpec"] == "ECC_NIST_P256" and pub["PublicKey"][:1] == b"\x30"  # DER
    mac_key = c.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = c.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert c.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]


def test_grants_over_the_wire(served: Served) -> None:
    c = kms(served)
    key = c.create_key()["KeyMetadata"]["KeyId"]
    bob = "arn:aws:iam::111122223333:user/bob"
    with pytest.raises(ClientError) as err:  # bob may only DescribeKey
        kms(served, "bob").encrypt(KeyId=key, Plaintext=b"x")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    grant = c.create_grant(KeyId=key, GranteePrincipal=bob, Operations=["Encrypt"])
    out = kms(served, "bob").encrypt(KeyId=key, Plaintext=b"x", GrantTokens=[grant["GrantToken"]])
    assert out["KeyId"].endswith(key)
    assert [g["GrantId"] for g in c.list_grants(KeyId=key)["Grants"]] == [grant["GrantId"]]
    c.revoke_grant(KeyId=key, GrantId=grant["GrantId"])
    with pytest.raises(ClientError):
        kms(served, "bob").encrypt(KeyId=key, Plaintext=b"x")


def test_dry_run_is_412(served: Served) -> None:
    c = kms(served)
    key = c.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as err:
        c.encrypt(KeyId=key, Plaintext=b"x", DryRun=True)
    assert err.value.response["Error"]["Code"] == "DryRunOperationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


# ----- who the request runs as -----
def test_denied_by_policy_as_simulate_decides(served: Served) -> None:
    key = kms(served).create_key()["KeyMetadata"]["KeyId"]
    for action, call in (("kms:Encrypt", "encrypt"), ("kms:DescribeKey", "describe_key")):
        sim = cli(served, "policy", "simulate", key, "--action", action, "--principal", "bob", "-o", "json")
        decision = json.loads(sim.stdout)["Decision"]
        args = {"KeyId": key, **({"Plaintext": b"x"} if call == "encrypt" else {})}
        try:
            getattr(kms(served, "bob"), call)(**args)
            wire = "Allowed"
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDeniedException"
            assert "user/bob" in exc.response["Error"]["Message"]
            wire = "ImplicitDeny"
        assert (decision, sim.returncode) == (wire, 0 if wire == "Allowed" else 1)
        assert decision == {"kms:Encrypt": "ImplicitDeny", "kms:DescribeKey": "Allowed"}[action]


def test_conditions_see_the_transport(served: Served) -> None:
    """dave's policy denies Encrypt to a Boto3 user agent: aws:UserAgent is the request's."""
    key = kms(served).create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as err:
        kms(served, "dave").encrypt(KeyId=key, Plaintext=b"x")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    body = json.dumps({"KeyId": key, "Plaintext": base64.b64encode(b"x").decode()}).encode()
    akid, secret = served.keys["dave"]
    host = f"127.0.0.1:{served.port}"
    headers = signed_headers(host, "Encrypt", body, akid, secret, extra={"User-Agent": "curl/8"})
    status, _, doc = post(served.port, headers, body)
    assert status == 200 and doc["KeyId"].endswith(key)


def test_source_ip_secure_transport_and_current_time_are_the_requests(served: Served) -> None:
    key = kms(served).create_key()["KeyMetadata"]["KeyId"]
    erin = kms(served, "erin")
    assert erin.encrypt(KeyId=key, Plaintext=b"x")["KeyId"].endswith(key)  # from 127.0.0.1: allowed
    for call in (
        lambda: erin.generate_random(NumberOfBytes=4),
        lambda: erin.generate_data_key(KeyId=key, KeySpec="AES_256"),
    ):
        with pytest.raises(ClientError) as err:  # plain HTTP; and it is after 2020
            call()
        assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    elsewhere = cli(served, "policy", "simulate", key, "--action", "kms:Encrypt", "--principal", "erin",
                    "--request", "aws:SourceIp=10.0.0.1")  # fmt: skip
    assert elsewhere.returncode == 1  # the same request from another address would be denied


def test_each_request_is_audited_with_principal_key_address_agent_and_id(served: Served) -> None:
    c = kms(served)
    out = c.generate_random(NumberOfBytes=8)
    request_id = out["ResponseMetadata"]["RequestId"]
    record = next(e for e in audit(served) if e["requestID"] == request_id)
    assert record["eventName"] == "GenerateRandom"
    assert record["userIdentity"]["arn"] == "arn:aws:iam::111122223333:user/alice"
    assert record["userIdentity"]["accessKeyId"] == served.keys["alice"][0]
    assert record["userIdentity"]["type"] == "IAMUser"
    assert record["sourceIPAddress"] == "127.0.0.1"
    assert record["userAgent"].startswith("Boto3/")


# ----- refusals: nothing served, AWS's error, a record without the body -----
CASES = {
    "wrong secret": "InvalidSignatureException",
    "unknown key": "UnrecognizedClientException",
    "other region": "InvalidSignatureException",
    "other service": "InvalidSignatureException",
    "10 minutes old": "InvalidSignatureException",
    "no signature": "MissingAuthenticationTokenException",
    "truncated authorization": "IncompleteSignatureException",
    "tampered body": "InvalidSignatureException",
    "wrong content hash": "InvalidSignatureException",
}


def _refused_headers(served: Served, case: str, body: bytes) -> dict[str, str]:
    akid, secret = served.keys["alice"]
    host = f"127.0.0.1:{served.port}"

    def sign(**kw: Any) -> dict[str, str]:
        return signed_headers(
            host, "CreateAlias", kw.pop("body", body), kw.pop("akid", akid), kw.pop("secret", secret), **kw
        )

    good = sign()
    return {
        "wrong secret": lambda: sign(secret="W" * 40),
        "unknown key": lambda: sign(akid="AKIAUNKNOWN000000000"),
        "other region": lambda: sign(region="eu-west-1"),
        "other service": lambda: sign(service="s3"),
        "10 minutes old": lambda: sign(when=datetime.now(UTC) - timedelta(minutes=10)),
        "no signature": lambda: {k: v for k, v in good.items() if k != "Authorization"},
        "truncated authorization": lambda: {**good, "Authorization": good["Authorization"][:60]},
        "tampered body": lambda: sign(body=body.replace(b"refused", b"REFUSED")),
        "wrong content hash": lambda: {**good, "X-Amz-Content-SHA256": "0" * 64},
    }[case]()


@pytest.mark.parametrize("case", list(CASES))
def test_refused_requests_serve_nothing(served: Served, case: str) -> None:
    key = kms(served).create_key()["KeyMetadata"]["KeyId"]
    body = json.dumps({"AliasName": "alias/refused", "TargetKeyId": key}).encode()
    status, resp_headers, doc = post(served.port, _refused_headers(served, case, body), body)
    assert status == 400
    assert doc["__type"] == CASES[case] and doc["message"]
    if case == "10 minutes old":
        assert doc["message"].startswith("Signature expired: ")
    aliases = [a["AliasName"] for a in kms(served).list_aliases()["Aliases"]]
    assert "alias/refused" not in aliases and "alias/REFUSED" not in aliases
    record = next(e for e in audit(served) if e["requestID"] == resp_headers["x-amzn-requestid"])
    assert record["errorCode"] == CASES[case] and record["eventName"] == "CreateAlias"
    assert record["userIdentity"]["type"] == "Unknown"
    assert record["requestParameters"] is None  # the body is never recorded


def test_the_refusal_cases_are_accepted_when_signed_right(served: Served) -> None:
    """The control: the same request, correctly signed, is served (the refusals are the signature's)."""
    key = kms(served).create_key()["KeyMetadata"]["KeyId"]
    body = json.dumps({"AliasName": "alias/accepted", "TargetKeyId": key}).encode()
    akid, secret = served.keys["alice"]
    status, _, _ = post(
        served.port, signed_headers(f"127.0.0.1:{served.port}", "CreateAlias", body, akid, secret), body
    )
    assert status == 200
    assert "alias/accepted" in [a["AliasName"] for a in kms(served).list_aliases()["Aliases"]]


def test_health_and_unknown_operation(served: Served) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{served.url}/health", timeout=10) as resp:
        assert resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
    akid, secret = served.keys["alice"]
    headers = signed_headers(f"127.0.0.1:{served.port}", "NoSuchThing", b"{}", akid, secret)
    status, _, doc = post(served.port, headers, b"{}")
    assert (status, doc["__type"]) == (400, "UnknownOperationException")
    headers = signed_headers(f"127.0.0.1:{served.port}", "CreatePrincipal", b"{}", akid, secret)
    status, _, doc = post(served.port, headers, b"{}")  # kmsctl's own operations are the CLI's only
    assert (status, doc["__type"]) == (400, "UnknownOperationException")
    reply = raw_exchange(served.port, b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"KeyId')
    assert reply.startswith(b"HTTP/1.1 4")


def test_aws_cli_v1_encrypts_and_decrypts(served: Served, tmp_path: Path) -> None:
    import os
    import shutil
    import sys

    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if aws is None:
        pytest.skip("the aws CLI (pip install awscli) is not installed")
    key = kms(served).create_key()["KeyMetadata"]["KeyId"]
    akid, secret = served.keys["alice"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": akid,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    (tmp_path / "plain.txt").write_bytes(b"from the aws cli")
    base = [aws, "--endpoint-url", served.url, "kms"]

    def aws_kms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=120, check=False)

    enc = aws_kms("encrypt", "--key-id", key, "--plaintext", f"fileb://{tmp_path / 'plain.txt'}", "--output", "json")
    assert enc.returncode == 0, enc.stderr
    (tmp_path / "ct.bin").write_bytes(base64.b64decode(json.loads(enc.stdout)["CiphertextBlob"]))
    ct = f"fileb://{tmp_path / 'ct.bin'}"
    dec = aws_kms("decrypt", "--ciphertext-blob", ct, "--query", "Plaintext", "--output", "text")
    assert dec.returncode == 0, dec.stderr
    assert base64.b64decode(dec.stdout.strip()) == b"from the aws cli"


# ----- the command itself -----
def test_unix_socket_two_workers_and_sigint(tmp_path: Path) -> None:
    import http.client
    import os
    import socket
    import stat

    home, passfile, keys = make_served_keyring(tmp_path, {"alice": ALLOW_ALL})
    sock_path = tmp_path / "kms.sock"
    proc, url = start_server(home, passfile, "--unix-socket", str(sock_path), "--workers", "2")
    try:
        assert url == f"unix:{sock_path}"
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600

        class UnixConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(sock_path))

        akid, secret = keys["alice"]
        for _ in range(6):
            body = b'{"NumberOfBytes": 8}'
            conn = UnixConnection("localhost")
            conn.request(
                "POST", "/", body=body, headers=signed_headers("localhost", "GenerateRandom", body, akid, secret)
            )
            resp = conn.getresponse()
            assert resp.status == 200 and len(base64.b64decode(json.loads(resp.read())["Plaintext"])) == 8
            conn.close()
    finally:
        assert stop_server(proc, signal.SIGINT) == 0


def test_non_loopback_needs_tls_and_auth_none_needs_loopback(served: Served) -> None:
    out = cli(served, "serve", "--listen", "0.0.0.0:0")
    assert out.returncode == 2 and "--tls-cert" in out.stderr and "--insecure-listen" in out.stderr
    out = cli(served, "serve", "--listen", "0.0.0.0:0", "--insecure-listen", "--auth", "none")
    assert out.returncode == 2 and "loopback" in out.stderr
    out = cli(served, "serve", "--tls-cert", "x.pem")
    assert out.returncode == 2 and "go together" in out.stderr


def test_auth_none_runs_as_root_on_loopback(tmp_path: Path) -> None:
    home, passfile, _ = make_served_keyring(tmp_path, {})
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0", "--auth", "none")
    try:
        c = boto3_client(url, "anything", "anything")
        key = c.create_key()["KeyMetadata"]
        assert key["Arn"].startswith("arn:aws:kms:us-east-1:111122223333:key/")
    finally:
        assert stop_server(proc) == 0


def test_tls_listener_and_secure_transport(tmp_path: Path) -> None:
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    home, passfile, keys = make_served_keyring(tmp_path, {"alice": ALLOW_ALL})
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert url.startswith("https://127.0.0.1:")
        c = boto3_client(url, *keys["alice"], verify=str(cert))
        request_id = c.generate_random(NumberOfBytes=4)["ResponseMetadata"]["RequestId"]
    finally:
        assert stop_server(proc) == 0
    served = Served(url, home, passfile, proc, keys)
    record = next(e for e in audit(served) if e["requestID"] == request_id)
    assert record["tlsDetails"] == {"secureTransport": True}


def test_malformed_requests_over_the_socket_get_4xx_and_the_worker_lives(served: Served) -> None:
    import random
    import re
    import urllib.request

    rng = random.Random(99)
    akid, secret = served.keys["alice"]
    host = f"127.0.0.1:{served.port}"
    statuses: list[int] = []
    for i in range(300):
        kind = i % 6
        if kind == 0:  # truncated body, connection half-closed
            data = b'{"KeyId": "alias/x", "Plaintext": "aGk='
            raw = (
                b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.Encrypt\r\nContent-Length: 400\r\n\r\n"
                + data
            )
        elif kind == 1:  # a body far over the limit, announced
            raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{"
        elif kind == 2:  # random header lines
            junk = "".join(rng.choice("abcXYZ:-_ \t\u00e9") for _ in range(rng.randint(1, 80)))
            raw = f"POST / HTTP/1.1\r\nHost: x\r\n{junk}: {junk}\r\nContent-Length: 2\r\n\r\n{{}}".encode()
        elif kind == 3:  # random bytes as a body, signed
            body = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
            status, _, _ = post(served.port, signed_headers(host, "Decrypt", body, akid, secret), body)
            statuses.append(status)
            continue
        elif kind == 4:  # wrong member types, signed
            body = json.dumps({"KeyId": rng.choice([1, [], {}, True]), "Plaintext": rng.choice([1, "!!", []])}).encode()
            status, _, _ = post(served.port, signed_headers(host, "Encrypt", body, akid, secret), body)
            statuses.append(status)
            continue
        else:  # garbage request line
            raw = bytes(rng.randrange(32, 127) for _ in range(rng.randint(1, 100))) + b"\r\n\r\n"
        try:
            reply = raw_exchange(served.port, raw)
        except (BrokenPipeError, ConnectionResetError):
            continue  # the server closed an oversized request early: refused, not served
        match = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
        if match:
            statuses.append(int(match.group(1)))
    assert len(statuses) > 250  # nearly every request got an answer (an oversized one may be cut off)
    assert statuses and all(400 <= s < 500 for s in statuses), sorted(set(statuses))
    with urllib.request.urlopen(f"{served.url}/health", timeout=10) as resp:
        assert resp.status == 200
    assert kms(served).generate_random(NumberOfBytes=4)["Plaintext"]
    verify = cli(served, "audit", "verify")
    assert verify.returncode == 0, verify.stderr


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    import socket
    import time

    home, passfile, keys = make_served_keyring(tmp_path, {"alice": ALLOW_ALL})
    proc, url = start_server(home, passfile, "--listen", "127.0.0.1:0")
    port = int(url.rsplit(":", 1)[1])
    body = b'{"NumberOfBytes": 16}'
    headers = signed_headers(f"127.0.0.1:{port}", "GenerateRandom", body, *keys["alice"])
    head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode() + body[:5])  # the request is in flight: half its body sent
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        s.sendall(body[5:])
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert len(base64.b64decode(json.loads(reply.split(b"\r\n\r\n", 1)[1])["Plaintext"])) == 16
    assert proc.wait(timeout=30) == 0

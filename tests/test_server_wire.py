"""The AWS JSON 1.1 translation and the SigV4 check, in-process (the WSGI
application called directly), and a malformed-request fuzz: only 4xx
answers, never a 500, and the audit trail still verifies afterwards."""

from __future__ import annotations

import base64
import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("botocore")

from server_helpers import ALLOW_ALL, make_served_keyring, signed_headers

from kmsctl.keyring.keyring import Keyring
from kmsctl.server import protocol, sigv4
from kmsctl.server.app import MAX_BODY, ServerApp
from kmsctl.service import LocalKMS

HOST = "127.0.0.1:4599"


class Wire:
    def __init__(self, app: ServerApp, akid: str, secret: str, key_id: str) -> None:
        self.app, self.akid, self.secret, self.key_id = app, akid, secret, key_id

    def call(
        self, headers: dict[str, str], body: bytes, method: str = "POST", path: str = "/", length: str | None = None
    ) -> tuple[int, dict[str, str], Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)) if length is None else length,
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
        seen: dict[str, Any] = {}

        def start_response(status: str, hdrs: list[tuple[str, str]]) -> None:
            seen["status"], seen["headers"] = int(status.split()[0]), {k.lower(): v for k, v in hdrs}

        raw = b"".join(self.app(environ, start_response))
        return seen["status"], seen["headers"], json.loads(raw) if raw else None

    def signed(self, target: str, doc: Any, **kw: Any) -> tuple[int, dict[str, str], Any]:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return self.call(signed_headers(HOST, target, body, self.akid, self.secret, **kw), body)


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    root = tmp_path_factory.mktemp("wire")
    home, _, keys = make_served_keyring(root, {"alice": ALLOW_ALL})
    keyring = Keyring(str(home))
    keyring.unlock_with_passphrase(b"test passphrase, not a secret")
    key_id = LocalKMS(keyring).create_key()["KeyMetadata"]["KeyId"]
    app = ServerApp(keyring, auth="sigv4")
    yield Wire(app, *keys["alice"], key_id)
    keyring.close()


def test_round_trip_types_blobs_and_timestamps(wire: Wire) -> None:
    status, headers, doc = wire.signed("Encrypt", {"KeyId": wire.key_id, "Plaintext": base64.b64encode(b"hi").decode()})
    assert status == 200 and headers["content-type"] == "application/x-amz-json-1.1" and headers["x-amzn-requestid"]
    blob = doc["CiphertextBlob"]
    assert base64.b64decode(blob, validate=True)
    status, _, doc = wire.signed("Decrypt", {"CiphertextBlob": blob})
    assert (status, base64.b64decode(doc["Plaintext"])) == (200, b"hi")
    status, _, doc = wire.signed("DescribeKey", {"KeyId": wire.key_id})
    assert isinstance(doc["KeyMetadata"]["CreationDate"], float)
    status, _, doc = wire.signed("ListKeys", b"")  # an empty body is {}
    assert status == 200 and doc["Keys"]


@pytest.mark.parametrize(
    ("doc", "code", "message"),
    [
        (b"{not json", "SerializationException", "not valid JSON"),
        (b"[1, 2]", "SerializationException", "JSON object"),
        (b'{"KeyId": NaN}', "SerializationException", "not valid JSON"),
        ({"KeyId": 5, "Plaintext": "aGk="}, "SerializationException", "'KeyId' must be a string, not a number"),
        ({"KeyId": "k", "Plaintext": "not base64!"}, "SerializationException", "'Plaintext' is not valid base64"),
        ({"KeyId": "k", "Plaintext": 12}, "SerializationException", "'Plaintext' must be a base64 string"),
        ({"KeyId": "k", "Plaintext": "aGk=", "EncryptionContext": []}, "SerializationException", "an object"),
        ({"KeyId": "k", "Plaintext": "aGk=", "EncryptionContext": {"a": 1}}, "SerializationException", "a string"),
        ({"KeyId": "k", "Plaintext": "aGk=", "GrantTokens": "t"}, "SerializationException", "an array"),
        ({"KeyId": "k", "Plaintext": "aGk=", "DryRun": "yes"}, "SerializationException", "a boolean"),
        (
            {"Plaintext": "aGk="},
            "ValidationException",
            "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null",
        ),
        ({}, "ValidationException", "2 validation errors detected: Value null at 'keyId'"),
    ],
)
def test_malformed_members_get_aws_errors(wire: Wire, doc: Any, code: str, message: str) -> None:
    status, headers, out = wire.signed("Encrypt", doc)
    assert (status, out["__type"]) == (400, code)
    assert message in out["message"]
    assert headers["x-amzn-errortype"] == code


def test_integer_members_refuse_booleans_and_floats(wire: Wire) -> None:
    for bad in (True, 1.5, "8"):
        status, _, out = wire.signed("GenerateRandom", {"NumberOfBytes": bad})
        assert (status, out["__type"]) == (400, "SerializationException"), bad
    status, _, out = wire.signed("GenerateRandom", {"NumberOfBytes": 0})
    assert (status, out["__type"]) == (400, "ValidationException")  # the operation's own range check


def test_unknown_members_are_ignored_as_aws_does(wire: Wire) -> None:
    status, _, out = wire.signed("GenerateRandom", {"NumberOfBytes": 4, "Whatever": {"x": [1]}})
    assert status == 200 and len(base64.b64decode(out["Plaintext"])) == 4


def test_size_limit_is_413(wire: Wire) -> None:
    body = b"{" + b" " * MAX_BODY + b"}"
    status, _, out = wire.signed("ListKeys", body)
    assert (status, out["__type"]) == (413, "RequestEntityTooLargeException")
    status, _, out = wire.call({"X-Amz-Target": "TrentService.ListKeys"}, b"{}", length=str(10 * MAX_BODY))
    assert status == 413


def test_health_and_methods(wire: Wire) -> None:
    assert wire.call({}, b"", method="GET", path="/health")[:1] == (200,)
    assert wire.call({}, b"", method="GET", path="/")[0] == 405
    assert wire.call({}, b"", method="POST", path="/x")[0] == 404


def test_unknown_target(wire: Wire) -> None:
    for target in ("Nope", "Encrypt.TrentService", ""):
        body = b"{}"
        headers = signed_headers(HOST, "X", body, wire.akid, wire.secret)
        headers["X-Amz-Target"] = target  # not signed as sent: the signature is checked first
        status, _, out = wire.call(headers, body)
        assert status == 400 and out["__type"] in ("InvalidSignatureException", "UnknownOperationException")
    status, _, out = wire.signed("Nope", b"{}")
    assert (status, out["__type"]) == (400, "UnknownOperationException")


def test_signature_not_yet_current(wire: Wire) -> None:
    from datetime import UTC, datetime, timedelta

    status, _, out = wire.signed("ListKeys", {}, when=datetime.now(UTC) + timedelta(minutes=10))
    assert out["__type"] == "InvalidSignatureException" and out["message"].startswith("Signature not yet current")
    status, _, out = wire.signed("ListKeys", {}, when=datetime.now(UTC) - timedelta(minutes=4))
    assert status == 200  # within the 5 minutes


def test_a_session_token_is_refused(wire: Wire) -> None:
    status, _, out = wire.signed("ListKeys", {}, extra={"X-Amz-Security-Token": "abc"})
    assert (status, out["__type"]) == (400, "UnrecognizedClientException")


def test_signed_headers_must_include_host_and_target(wire: Wire) -> None:
    body = b"{}"
    headers = signed_headers(HOST, "ListKeys", body, wire.akid, wire.secret)
    headers["Authorization"] = headers["Authorization"].replace("host;", "")
    status, _, out = wire.call(headers, body)
    assert (status, out["__type"]) == (400, "IncompleteSignatureException")
    assert "'host' must be a 'SignedHeader'" in out["message"]


def test_botocore_signer_matches_the_aws_sigv4_test_suite() -> None:
    """AWS's SigV4 test suite, get-vanilla: a botocore upgrade that changes canonicalisation fails here."""
    auth = sigv4.Authorization(
        "AKIDEXAMPLE", "20150830", "us-east-1", "service", "aws4_request", ("host", "x-amz-date"), "0" * 64
    )
    headers = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    got = sigv4._signature("GET", "http://example.amazonaws.com/", headers, b"", auth, secret, "20150830T123600Z")
    assert got == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"


def test_every_implemented_model_operation_is_served() -> None:
    served = protocol.operations()
    for name in ("Encrypt", "Decrypt", "CreateKey", "Sign", "CreateGrant", "ListAliases", "GenerateDataKeyPair"):
        assert name in served
    assert "CreatePrincipal" not in served and "ResetKeyPolicy" not in served  # kmsctl's own: the CLI only


def _typed(shape_name: str, rng: random.Random, wire: Wire, depth: int = 0) -> Any:
    """A value of the model's type for the shape, with arbitrary content: it reaches the operation."""
    shape = protocol.model()["shapes"][shape_name]
    kind = shape["type"]
    if kind == "structure":
        members = shape.get("members", {})
        return {m: _typed(ref["shape"], rng, wire, depth + 1) for m, ref in members.items() if rng.random() < 0.6}
    if kind == "list":
        return [
            _typed(shape["member"]["shape"], rng, wire, depth + 1) for _ in range(rng.randint(0, 3 if depth < 3 else 0))
        ]
    if kind == "map":
        return {rng.choice(["a", "", "aws:x", "k" * 300]): "v" for _ in range(rng.randint(0, 3))}
    if kind == "string":
        if "enum" in shape and rng.random() < 0.7:
            return rng.choice(shape["enum"])
        return rng.choice(
            [
                wire.key_id,
                "alias/x",
                "alias/aws/x",
                "",
                "arn:aws:kms:us-east-1:111122223333:key/x",
                "\u0000",
                "x" * 9000,
            ]
        )
    if kind == "blob":
        return base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 16, 200, 5000])))).decode()
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("integer", "long"):
        return rng.choice([-1, 0, 1, 7, 30, 1024, 2**31, 2**63])
    return rng.choice([0, 1.5e9, -1e20])


def _fuzz_request(rng: random.Random, wire: Wire) -> tuple[dict[str, str], bytes, str | None]:
    ops = sorted(protocol.operations())
    op = rng.choice([*ops, "Bogus", ""])
    junk: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x" * rng.randint(1, 3000), [], {}, [1, "a"], {"a": {}}]
    kind = rng.randrange(10)
    shape = protocol.model()["operations"].get(op, {}).get("input")
    if kind >= 7 and shape:
        body = json.dumps(_typed(shape, rng, wire)).encode()
    elif kind == 0:
        body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    elif kind == 1:
        doc = json.dumps({"KeyId": wire.key_id, "Plaintext": "aGk="})
        body = doc[: rng.randint(0, len(doc))].encode()  # truncated
    elif kind == 2:
        body = b"[" * rng.randint(1, 5000)  # deep nesting
    else:
        members = list(protocol.model()["shapes"][shape]["members"]) if shape else ["KeyId"]
        doc = {m: rng.choice([*junk, wire.key_id, "aGk="]) for m in rng.sample(members, rng.randint(0, len(members)))}
        body = json.dumps(doc).encode()
    extra = {}
    if rng.random() < 0.3:
        extra[rng.choice(["X-Foo", "Content-Encoding", "Transfer-Encoding", "Expect", "X-Amz-Date"])] = rng.choice(
            ["", "gzip", "\u00e9", "x" * 500, "20000101T000000Z"]
        )
    headers = signed_headers(HOST, op, body, wire.akid, wire.secret)
    mode = rng.randrange(4)
    if mode == 1:
        headers.pop("Authorization")
    elif mode == 2:
        headers["Authorization"] = headers["Authorization"][: rng.randint(0, 200)]
    headers.update(extra)
    length = None if rng.random() < 0.9 else rng.choice(["abc", "-1", str(len(body) + 10)])
    return headers, body, length


def test_malformed_request_fuzz_gets_4xx_only_and_the_trail_verifies(wire: Wire, tmp_path: Path) -> None:
    rng = random.Random(1234)
    statuses: dict[int, int] = {}
    for _ in range(2000):
        headers, body, length = _fuzz_request(rng, wire)
        status, _, out = wire.call(headers, body, length=length)
        statuses[status] = statuses.get(status, 0) + 1
        assert 400 <= status < 500 or status == 200, (status, out, headers, body[:200])
        if status >= 400:
            assert isinstance(out.get("__type"), str) and isinstance(out.get("message"), str)
    assert statuses.get(400, 0) > 1000  # the fuzz mostly reached the checks
    kms = wire.app.open()
    kms.act_as(None)
    verified = kms.audit_verify()  # IntegrityError if any record were damaged
    assert verified["RecordsVerified"] >= 2000 and verified["PendingUnauthenticated"] == 0

#!/usr/bin/env python3
"""Server-side CPU cost of one request, in process: no HTTP, no load generator.

Run from the repository root with the venv's interpreter (kmsctl with its
server extra and botocore installed):

    .venv/bin/python bench/bench_dispatch.py [-n 2000] [--ops Encrypt,Decrypt] [--profile Encrypt]

A fresh keyring (no passphrase) with a principal whose identity policy allows
kms:*, an access key, and one key of each kind the operations need; then the
WSGI application of ``kmsctl serve`` (kmsctl.server.app.ServerApp) is called
directly ``-n`` times per operation with one request signed by SigV4 at the
start (as bench_server.py replays with wrk). Reported per request: CPU time
(time.process_time, so the load of other processes on the machine hardly
matters), wall time, and the SQLite statements the request ran (counted by
the connection's trace callback). ``--instructions`` counts instructions per
request with valgrind instead (independent of the machine's load; ``-n 100``
takes about a minute an operation). ``--profile OP`` prints a cProfile of that
operation (top functions by cumulative time; SORT=tottime TOP=60 in the
environment change that).

The same script measures another checkout's code when run by that checkout's
interpreter (an editable install): ``/work/main/.venv/bin/python
bench/bench_dispatch.py`` measures main's.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
HOST = "127.0.0.1:4000"
OPS = ("Encrypt", "Decrypt", "GenerateDataKey", "Sign", "Verify", "GenerateMac")


def setup(home: str) -> tuple[Any, dict[str, str], dict[str, str]]:
    """(the WSGI app, the access key, key IDs by kind) on a new keyring in ``home``."""
    from kmsctl.keyring import keyring as K
    from kmsctl.server.app import ServerApp
    from kmsctl.service import LocalKMS

    K.create(home, None, region="us-east-1", account="111122223333", created="2026-01-01T00:00:00Z")
    ring = K.Keyring(home)
    ring.unlock_unprotected()
    kms = LocalKMS(ring)
    kms.create_principal(Name="bench", Policy=json.dumps(ALLOW_ALL))
    ak = kms.create_access_key(Principal="bench")["AccessKey"]
    keys = {
        "symmetric": kms.create_key()["KeyMetadata"]["KeyId"],
        "sign": kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"],
        "mac": kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"],
    }
    ciphertext = kms.encrypt(KeyId=keys["symmetric"], Plaintext=b"x" * 64, EncryptionContext={"bench": "1"})
    keys["ciphertext"] = base64.b64encode(ciphertext["CiphertextBlob"]).decode()
    digest = os.urandom(32)
    keys["digest"] = base64.b64encode(digest).decode()
    sig = kms.sign(KeyId=keys["sign"], Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    keys["signature"] = base64.b64encode(sig["Signature"]).decode()
    ring.close()
    ring = K.Keyring(home)
    ring.unlock_unprotected()
    return ServerApp(ring), {"id": ak["AccessKeyId"], "secret": ak["SecretAccessKey"]}, keys


def body_of(op: str, keys: dict[str, str]) -> dict[str, Any]:
    plaintext = base64.b64encode(os.urandom(64)).decode()
    ctx = {"bench": "1"}
    return {
        "Encrypt": {"KeyId": keys["symmetric"], "Plaintext": plaintext, "EncryptionContext": ctx},
        "Decrypt": {"CiphertextBlob": keys["ciphertext"], "EncryptionContext": ctx},
        "GenerateDataKey": {"KeyId": keys["symmetric"], "KeySpec": "AES_256", "EncryptionContext": ctx},
        "Sign": {
            "KeyId": keys["sign"],
            "Message": keys["digest"],
            "MessageType": "DIGEST",
            "SigningAlgorithm": "ECDSA_SHA_256",
        },
        "Verify": {
            "KeyId": keys["sign"],
            "Message": keys["digest"],
            "MessageType": "DIGEST",
            "Signature": keys["signature"],
            "SigningAlgorithm": "ECDSA_SHA_256",
        },
        "GenerateMac": {"KeyId": keys["mac"], "Message": plaintext, "MacAlgorithm": "HMAC_SHA_256"},
    }[op]


def environ_of(op: str, body: bytes, ak: dict[str, str]) -> dict[str, Any]:
    """A WSGI environ for one POST, signed now as botocore signs."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"TrentService.{op}",
        "X-Amz-Date": stamp,
        "Host": HOST,
        "User-Agent": "bench_dispatch",
    }
    req = AWSRequest(method="POST", url=f"http://{HOST}/", data=body, headers=headers)
    req.context["timestamp"] = stamp
    auth = SigV4Auth(Credentials(ak["id"], ak["secret"]), "kms", "us-east-1")
    sig = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
    names = auth.signed_headers(auth.headers_to_sign(req))
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ak['id']}/{stamp[:8]}/us-east-1/kms/aws4_request, "
        f"SignedHeaders={names}, Signature={sig}"
    )
    env: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "CONTENT_TYPE": headers.pop("Content-Type"),
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app: Any, env: dict[str, Any], body: bytes) -> tuple[str, bytes]:
    out: list[str] = []
    chunks = app({**env, "wsgi.input": io.BytesIO(body)}, lambda status, headers: out.append(status))
    return out[0], b"".join(chunks)


def measure(app: Any, op: str, ak: dict[str, str], keys: dict[str, str], n: int) -> dict[str, float]:
    body = json.dumps(body_of(op, keys)).encode()
    env = environ_of(op, body, ak)
    status, data = call(app, env, body)
    if not status.startswith("200"):
        raise SystemExit(f"{op} fails: {status} {data[:300]!r}")
    statements = [0]
    conn = app.open().db.conn
    conn.set_trace_callback(lambda sql: statements.__setitem__(0, statements[0] + 1))
    call(app, env, body)
    per_request = statements[0]
    conn.set_trace_callback(None)
    for _ in range(min(50, n)):  # warm-up
        call(app, env, body)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        call(app, env, body)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_ms": cpu / n * 1e3, "wall_ms": wall / n * 1e3, "statements": per_request}


def profile(app: Any, op: str, ak: dict[str, str], keys: dict[str, str], n: int) -> None:
    import cProfile
    import pstats

    body = json.dumps(body_of(op, keys)).encode()
    env = environ_of(op, body, ak)
    call(app, env, body)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        call(app, env, body)
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats(os.environ.get("SORT", "cumulative")).print_stats(int(os.environ.get("TOP", "45")))


def instructions(op: str, n: int) -> float:
    """Instructions one request of ``op`` costs: this script run twice under callgrind, with n
    and 3n requests (the same set-up and warm-up), the difference divided by 2n."""
    import re
    import subprocess

    counts = []
    for requests in (n, 3 * n):
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
        out = subprocess.run([*cmd, "-n", str(requests), "--ops", op], capture_output=True, text=True, check=True)
        found = re.search(r"Collected : (\d+)", out.stderr)
        if found is None:
            raise SystemExit(f"no instruction count from valgrind: {out.stderr[-500:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (2 * n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per operation (default 2000)")
    parser.add_argument("--ops", default=",".join(OPS), help=f"operations (default {','.join(OPS)})")
    parser.add_argument("--profile", metavar="OP", help="print a cProfile of OP instead")
    parser.add_argument("--json", action="store_true", help="one JSON line per operation")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per request instead, counted by valgrind (load-independent; slow: keep -n small)",
    )
    args = parser.parse_args()
    if args.instructions:
        for op in args.ops.split(","):
            print(f"{op:16} {instructions(op, args.n):10.0f} instructions/request (valgrind callgrind)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        app, ak, keys = setup(os.path.join(tmp, "home"))
        if args.profile:
            profile(app, args.profile, ak, keys, args.n)
            return 0
        for op in args.ops.split(","):
            r = measure(app, op, ak, keys, args.n)
            if args.json:
                print(json.dumps({"op": op, **r}))
            else:
                cpu, wall, sql = r["cpu_ms"], r["wall_ms"], r["statements"]
                print(f"{op:16} {cpu:7.3f} ms CPU  {wall:7.3f} ms wall  {sql:3d} SQL/request")
        app.open().keyring.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

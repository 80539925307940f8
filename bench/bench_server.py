#!/usr/bin/env python3
"""Encrypt requests per second over HTTP: `kmsctl serve` against `python -m moto.server`.

Run from the repository root with the venv's interpreter (kmsctl with its
server extra, boto3 and moto[server] installed; wrk on PATH: apt-get install wrk):

    .venv/bin/python bench/bench_server.py [--duration 60] [--connections 8] [--workers 1,2]

For each server: a fresh keyring (or moto's in-memory account) with one
symmetric key, then `wrk` replaying one Encrypt request (64 bytes of
plaintext, an encryption context) signed with SigV4 once at the start: AWS
accepts a signature for 5 minutes, so a run must stay under that. kmsctl
serve checks every signature (its principal's access key, the default and
only mode) and writes an audit record for every request; moto checks no
signature and keeps no trail. wrk's Lua `done` hook reports requests/s,
p50/p99 latency and every error (connect, read, write, timeout, non-2xx).

The exit status is 1 when any request failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT_DIR = Path(__file__).resolve().parent.parent
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
LUA = """
wrk.method = "POST"
wrk.body = %(body)s
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def kmsctl(home: str, *args: str) -> str:
    exe = Path(sys.executable).with_name("kmsctl")
    env = {**os.environ, "KMSCTL_HOME": home}
    out = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, check=True)
    return out.stdout


def signed(port: int, body: bytes, akid: str, secret: str) -> dict[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    host = f"127.0.0.1:{port}"
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "TrentService.Encrypt",
        "X-Amz-Date": stamp,
        "Host": host,
    }
    req = AWSRequest(method="POST", url=f"http://{host}/", data=body, headers=headers)
    req.context["timestamp"] = stamp
    auth = SigV4Auth(Credentials(akid, secret), "kms", "us-east-1")
    sig = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
    names = auth.signed_headers(auth.headers_to_sign(req))
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={akid}/{stamp[:8]}/us-east-1/kms/aws4_request, "
        f"SignedHeaders={names}, Signature={sig}"
    )
    return headers


def encrypt_body(key_id: str) -> bytes:
    plaintext = base64.b64encode(os.urandom(64)).decode()
    return json.dumps({"KeyId": key_id, "Plaintext": plaintext, "EncryptionContext": {"bench": "1"}}).encode()


def run_wrk(port: int, headers: dict[str, str], body: bytes, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    lua = Path(tmp) / f"encrypt-{port}.lua"
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items() if k != "Host")
    lua.write_text(LUA % {"body": json.dumps(body.decode()), "headers": lines})
    threads = str(min(2, args.connections))
    cmd = ["wrk", "-t", threads, "-c", str(args.connections), "-d", f"{args.duration}s", "--latency", "-s", str(lua)]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT ") :])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
    return r


def check_once(port: int, headers: dict[str, str], body: bytes) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/", body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200 or "CiphertextBlob" not in json.loads(data):
        raise SystemExit(f"the signed Encrypt fails on {port}: {resp.status} {data[:300]!r}")


def bench_kmsctl(workers: int, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    home = tempfile.mkdtemp(dir=tmp)
    kmsctl(home, "init", "--no-passphrase", "--region", "us-east-1", "--account", "111122223333")
    policy = Path(home) / "policy.json"
    policy.write_text(json.dumps(ALLOW_ALL))
    kmsctl(home, "principal", "create", "bench", "--policy", str(policy))
    ak = json.loads(kmsctl(home, "principal", "access-key", "create", "bench", "-o", "json"))["AccessKey"]
    key_id = kmsctl(home, "-o", "text", "create").split()[0]
    port = free_port()
    exe = Path(sys.executable).with_name("kmsctl")
    proc = subprocess.Popen(
        [str(exe), "serve", "--listen", f"127.0.0.1:{port}", "--workers", str(workers)],
        env={**os.environ, "KMSCTL_HOME": home},
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        body = encrypt_body(key_id)
        headers = signed(port, body, ak["AccessKeyId"], ak["SecretAccessKey"])
        check_once(port, headers, body)
        return run_wrk(port, headers, body, args, tmp)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        verify = subprocess.run(
            [str(exe), "audit", "verify"], env={**os.environ, "KMSCTL_HOME": home}, capture_output=True, text=True
        )
        print(f"  kmsctl audit verify: {verify.stderr.strip()}", file=sys.stderr)


def bench_moto(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    import boto3

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        client = boto3.client(
            "kms", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        key_id = client.create_key()["KeyMetadata"]["KeyId"]
        body = encrypt_body(key_id)
        headers = signed(port, body, "testing", "testing")
        check_once(port, headers, body)
        return run_wrk(port, headers, body, args, tmp)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds per server (under 300: SigV4's window)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", default="1,2", help="kmsctl serve --workers values to run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH (apt-get install wrk)")
    if not 1 <= args.duration < 290:
        raise SystemExit("--duration must be under 290 s: the signature is made once, at the start")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["moto"] = bench_moto(args, tmp)
        for n in (int(w) for w in args.workers.split(",")):
            results[f"kmsctl serve --workers {n}"] = bench_kmsctl(n, args, tmp)
    moto = results["moto"]["rps"]
    print(f"Encrypt, {args.connections} connections, {args.duration} s each, {os.cpu_count()} CPUs")
    print(f"{'server':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'x moto':>7}")
    for name, r in results.items():
        p50, p99 = r["p50_us"] / 1000, r["p99_us"] / 1000
        print(f"{name:<28} {r['rps']:>8.0f} {p50:>8.1f} {p99:>8.1f} {r['errors']:>7} {r['rps'] / moto:>7.2f}")
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

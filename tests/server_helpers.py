"""Helpers for the ``kmsctl serve`` tests: a keyring with principals and access keys,
a real server subprocess, and hand-signed requests (for the refusals boto3 never makes)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import PASSPHRASE, make_keyring

REGION = "us-east-1"
ACCOUNT = "111122223333"
ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
)


@dataclass
class Served:
    url: str
    home: Path
    passfile: Path
    proc: subprocess.Popen[bytes]
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # principal -> (AKID, secret)
    ready_line: str = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def env(self) -> dict[str, str]:
        return {"KMSCTL_HOME": str(self.home), "KMSCTL_PASSPHRASE_FILE": str(self.passfile)}


def make_served_keyring(root: Path, principals: dict[str, str | None]) -> tuple[Path, Path, dict[str, tuple[str, str]]]:
    """A keyring at root/home with ``principals`` (name -> identity policy or None), each with an access key."""
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.service import LocalKMS

    home = make_keyring(root / "home")
    passfile = root / "pass.txt"
    passfile.write_text(PASSPHRASE + "\n")
    keyring = Keyring(str(home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    kms = LocalKMS(keyring)
    keys = {}
    for name, policy in principals.items():
        kms.create_principal(Name=name, **({"Policy": policy} if policy else {}))
        ak = kms.create_access_key(Principal=name)["AccessKey"]
        keys[name] = (ak["AccessKeyId"], ak["SecretAccessKey"])
    keyring.close()
    return home, passfile, keys


def kmsctl_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("kmsctl")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kmsctl"]


def start_server(home: Path, passfile: Path, *args: str, timeout: float = 30) -> tuple[subprocess.Popen[bytes], str]:
    """``kmsctl serve ARGS`` as a subprocess; (process, the ready line's URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KMSCTL_", "AWS_"))}
    env.update({"KMSCTL_HOME": str(home), "KMSCTL_PASSPHRASE_FILE": str(passfile)})
    proc = subprocess.Popen(
        [*kmsctl_cmd(), "serve", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if not line:
            break
        seen.append(line)
        if line.startswith("kmsctl: listening on "):
            return proc, line.split("listening on ", 1)[1].strip()
    proc.kill()
    raise AssertionError(f"kmsctl serve did not get ready: {''.join(seen)!r}")


def stop_server(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def boto3_client(
    url: str, akid: str, secret: str, region: str = REGION, verify: str | None = None, **config: Any
) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "kms",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        verify=verify,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def signed_headers(
    host: str,
    target: str,
    body: bytes,
    akid: str,
    secret: str,
    *,
    region: str = REGION,
    service: str = "kms",
    when: datetime | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers of a request signed as boto3 signs (by botocore), at ``when``."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"TrentService.{target}",
        "X-Amz-Date": stamp,
        "Host": host,
        **(extra or {}),
    }
    request = AWSRequest(method="POST", url=f"http://{host}/", data=body, headers=headers)
    request.context["timestamp"] = stamp
    auth = SigV4Auth(Credentials(akid, secret), service, region)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    scope = f"{akid}/{stamp[:8]}/{region}/{service}/aws4_request"
    headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed}, Signature={signature}"
    return headers


def post(port: int, headers: dict[str, str], body: bytes, host: str = "127.0.0.1") -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body or None) of one request over a real socket."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes, half-close, read the answer (a truncated or broken request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)

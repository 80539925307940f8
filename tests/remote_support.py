"""Shared by the remote backend's tests: test credentials, free ports, the
test servers (moto's, kmsctl serve) and the real binary as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import PASSPHRASE, make_keyring

from kmsctl.cli import COMMANDS

REGION = "us-east-1"
# credentials for a test server; never real ones, and nothing from the developer's ~/.aws
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAKMSCTLTEST000001",
    "AWS_SECRET_ACCESS_KEY": "kmsctl-test-secret-not-a-secret",
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",  # no 1 s wait for an instance metadata service
}
AWS_UNSET = ["AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"]


@dataclass
class Endpoint:
    kind: str  # "moto" or "serve"
    url: str
    credentials: dict[str, str] = field(default_factory=dict)  # the client's, where the server checks them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(proc: subprocess.Popen[bytes], url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the test server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers: up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the test server did not come up at {url}")


def start_moto(port: int) -> subprocess.Popen[bytes]:
    pytest.importorskip("moto.server", reason="needs moto's server: pip install 'moto[server]'")
    return subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# kms:* and kmsctl:* (kmsctl's own operations: Encapsulate, Decapsulate, ...)
ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:*", "kmsctl:*"], "Resource": "*"}]}
)


def start_serve(port: int, home: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """kmsctl serve on a fresh keyring, as a client meets it: every request
    signed (SigV4) by the access key of a principal allowed kms:* and kmsctl:*. The
    credentials come back for the client's environment."""
    if "serve" not in COMMANDS:
        pytest.skip("kmsctl serve is not in this build")
    make_keyring(home)
    passfile = home.parent / "serve-pass.txt"
    passfile.write_text(PASSPHRASE + "\n")
    policy = home.parent / "tester-policy.json"
    policy.write_text(ALLOW_ALL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KMSCTL_", "AWS_"))}
    env.update({"KMSCTL_HOME": str(home), "KMSCTL_PASSPHRASE_FILE": str(passfile)})
    for args in (["principal", "create", "tester"], ["principal", "policy", "put", "tester", str(policy)]):
        subprocess.run([sys.executable, "-m", "kmsctl", "-q", *args], env=env, check=True, capture_output=True)
    made = subprocess.run(
        [sys.executable, "-m", "kmsctl", "-q", "principal", "access-key", "create", "tester", "-o", "json"],
        env=env,
        check=True,
        capture_output=True,
    )
    key = json.loads(made.stdout)["AccessKey"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmsctl", "serve", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def run_binary(args: list[str], env: dict[str, str], input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The real kmsctl with only ``env`` (plus PATH and the like, no KMSCTL_ or AWS_ variable)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("KMSCTL_", "AWS_"))}
    full.update(env)
    exe = Path(sys.executable).with_name("kmsctl")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kmsctl"]
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(
        [*cmd, *args], input=input, stdin=stdin, env=full, capture_output=True, timeout=60, check=False
    )

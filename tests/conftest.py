"""Shared fixtures.

The KDF cost is lowered here, by the test suite, never through a production
flag: keyrings made by these fixtures store cheap Argon2id parameters in their
header, so even subprocesses running the real binary unlock them quickly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kmsctl.cli import run
from kmsctl.keyring import keyring as kr
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

FAST_KDF = {"iterations": 1, "memory_kib": 1024, "lanes": 1}  # the floor kmsctl accepts
PASSPHRASE = "test passphrase, not a secret"
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class FakeClock:
    """An injectable clock: tests travel in time with ``advance``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, *, days: float = 0, seconds: float = 0) -> None:
        self.now += days * 86400 + seconds


@dataclass
class Result:
    exit_code: int
    stdout_bytes: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode()


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kr, "DEFAULT_KDF", FAST_KDF)


@pytest.fixture(autouse=True, scope="session")
def private_files() -> Iterator[None]:
    """Files the tests write (passphrase files above all) are private, as a
    user's should be: kmsctl warns about a passphrase file others can read."""
    old = os.umask(0o077)
    yield
    os.umask(old)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kmsctl setting from the developer's shell leaks into a test, nor the
    CI runner's CI=true (it implies --no-input; the tests that need it set it)."""
    for name in list(os.environ):
        if name.startswith("KMSCTL_") or name in ("NO_COLOR", "CI"):
            monkeypatch.delenv(name)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def passfile(tmp_path: Path) -> Path:
    p = tmp_path / "pass.txt"
    p.write_text(PASSPHRASE + "\n")
    return p


def make_keyring(home: Path) -> Path:
    """A protected keyring at ``home`` with cheap KDF parameters."""
    kr.create(
        str(home),
        PASSPHRASE.encode(),
        region="us-east-1",
        account="111122223333",
        created="2027-01-15T08:00:00+00:00",
        kdf=FAST_KDF,
    )
    return home


@pytest.fixture
def keyring_home(home: Path) -> Path:
    return make_keyring(home)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kms(keyring_home: Path, clock: FakeClock) -> Iterator[LocalKMS]:
    keyring = Keyring(str(keyring_home))
    keyring.unlock_with_passphrase(PASSPHRASE.encode())
    yield LocalKMS(keyring, clock=clock)
    keyring.close()


@pytest.fixture
def cli(keyring_home: Path, passfile: Path) -> Any:
    """Run kmsctl in-process (click's CliRunner isolation around the real
    error boundary); the keyring is unlocked through KMSCTL_PASSPHRASE_FILE."""

    def invoke(*args: str, input: bytes | str | None = None, env: dict[str, str | None] | None = None) -> Result:
        full_env: dict[str, str | None] = {"KMSCTL_HOME": str(keyring_home), "KMSCTL_PASSPHRASE_FILE": str(passfile)}
        full_env.update(env or {})
        runner = CliRunner()
        with runner.isolation(input=input, env=full_env) as (out, err, _):
            code = run(list(args))
        return Result(code, out.getvalue(), err.getvalue().decode())

    return invoke


@pytest.fixture
def sub(keyring_home: Path, passfile: Path) -> Any:
    """Run the real ``kmsctl`` console script as a subprocess."""
    exe = Path(sys.executable).with_name("kmsctl")

    def invoke(
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        prefix: list[str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """``prefix`` wraps the command (e.g. ``["faketime", "-f", "+95d"]``)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
        full_env.update({"KMSCTL_HOME": str(keyring_home), "KMSCTL_PASSPHRASE_FILE": str(passfile)})
        full_env.update(env or {})
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kmsctl"]
        stdin = None if input is not None else subprocess.DEVNULL
        return subprocess.run(
            [*(prefix or []), *cmd, *args],
            input=input,
            stdin=stdin,
            env=full_env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    return invoke

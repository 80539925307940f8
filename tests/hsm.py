"""SoftHSM2 tokens for the tests: each one in its own SOFTHSM2_CONF and token
folder under the test's tmp_path, so tests never see each other's tokens.

Tests that need a token call ``softhsm_token(tmp_path)`` (or use the
``token`` fixture of their module); both skip, with a reason saying what is
"not installed", when softhsm2-util or python-pkcs11 is missing. CI fails on
such skips (.ci/run), so they only ever skip on a developer's machine.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE = os.environ.get("KMSCTL_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
SO_PIN = "12345678"
PIN = "8765-test-pin-4321"  # distinctive, so a grep for it in files and output means something


@dataclass
class SoftToken:
    uri: str  # pkcs11:token=LABEL?module-path=MODULE
    pin: str
    env: dict[str, str]  # SOFTHSM2_CONF for subprocesses (and for monkeypatch in-process)
    label: str
    conf: Path
    tokendir: Path
    pin_file: Path

    def add_token(self, label: str, pin: str | None = None) -> None:
        """Another token in the same configuration (e.g. one with the same label)."""
        init_token(self.conf, label, pin or self.pin)


def require_softhsm() -> None:
    if shutil.which("softhsm2-util") is None or not os.path.exists(MODULE):
        pytest.skip(f"SoftHSM2 not installed (softhsm2-util, {MODULE}): apt-get install softhsm2")
    if importlib.util.find_spec("pkcs11") is None:
        pytest.skip("python-pkcs11 not installed: pip install 'kmsctl[pkcs11]'")


def write_conf(tmp_path: Path, name: str = "softhsm") -> tuple[Path, Path]:
    base = tmp_path / name
    tokendir = base / "tokens"
    tokendir.mkdir(parents=True, exist_ok=True)
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\n")
    return conf, tokendir


def init_token(conf: Path, label: str, pin: str) -> None:
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
        timeout=30,
    )


def softhsm_token(tmp_path: Path, label: str = "kmsctl-test", pin: str = PIN, name: str = "softhsm") -> SoftToken:
    """A fresh, initialised token in its own configuration."""
    require_softhsm()
    conf, tokendir = write_conf(tmp_path, name)
    init_token(conf, label, pin)
    pin_file = tmp_path / f"{name}.pin"
    pin_file.write_text(pin + "\n")
    pin_file.chmod(0o600)
    uri = f"pkcs11:token={label}?module-path={MODULE}"
    return SoftToken(uri, pin, {"SOFTHSM2_CONF": str(conf)}, label, conf, tokendir, pin_file)


def empty_conf(tmp_path: Path, name: str = "empty") -> dict[str, str]:
    """A configuration with no token at all (the token 'unplugged')."""
    conf, _ = write_conf(tmp_path, name)
    return {"SOFTHSM2_CONF": str(conf)}


@pytest.fixture(name="token")
def token_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftToken]:
    """A fresh token whose configuration this process uses too; every session
    is closed and the module finalised afterwards, so the next test's
    configuration is read afresh."""
    from kmsctl.hsm.token import close_all

    t = softhsm_token(tmp_path)
    close_all()
    monkeypatch.setenv("SOFTHSM2_CONF", t.env["SOFTHSM2_CONF"])
    yield t
    close_all()

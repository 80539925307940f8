"""``kmsctl serve`` as a command: its extra stays out of the CLI's start-up, and
without the extra it says how to install it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from typing import Any

import pytest


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["encrypt", "--help"]])
def test_the_cli_never_loads_the_server_extra(args: list[str]) -> None:
    code = (
        "import sys, json\n"
        "from kmsctl.cli import run\n"
        f"rc = run({args!r})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'gunicorn', 'botocore', 'boto3'})\n"
        "sys.stderr.write(json.dumps([rc, heavy]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    rc, heavy = json.loads(proc.stderr.strip().splitlines()[-1])
    assert (rc, heavy) == (0, [])


def test_serve_help_documents_the_port_and_the_ready_line(cli: Any) -> None:
    out = cli("serve", "--help")
    assert out.exit_code == 0
    assert "127.0.0.1:4599" in out.stdout and "listening on URL" in out.stdout


def test_without_the_extra_serve_says_how_to_install_it(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gunicorn" else real(name, *a))
    out = cli("serve")
    assert out.exit_code == 2
    assert out.stderr.strip() == "kmsctl: UsageError: kmsctl serve needs gunicorn: pip install 'kmsctl[server]'"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--listen", "10.1.2.3:4599"], "needs --tls-cert and --tls-key, or --insecure-listen"),
        (["--listen", "nonsense:port"], "HOST:PORT"),
        (["--listen", "[::1]:0", "--auth", "none", "--tls-key", "k.pem"], "go together"),
        (["--listen", "10.1.2.3:0", "--insecure-listen", "--auth", "none"], "only on loopback or a Unix socket"),
        (
            ["--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"],
            "no such file",
        ),
    ],
)
def test_serve_refuses_unsafe_or_bad_listening(cli: Any, args: list[str], needle: str) -> None:
    out = cli("serve", *args)
    assert out.exit_code == 2 and needle in out.stderr, out.stderr

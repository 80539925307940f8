"""kmsctl exec: env files of ciphertexts, or a sealed dotenv, decrypted in
memory into a command's environment; the exit status is the command's."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import kmsctl.cli.exec_cmd as exec_cmd

SECRET = b"correct-horse-db-pw"


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[bytes, bytes]]]:
    """In-process runs record the command instead of becoming it."""
    calls: list[tuple[list[str], dict[bytes, bytes]]] = []
    monkeypatch.setattr(exec_cmd, "replace_process", lambda argv, env: calls.append((argv, env)))
    return calls


@pytest.fixture
def key(cli: Any) -> str:
    assert cli("create", "--alias", "alias/app").exit_code == 0
    return "alias/app"


def ciphertext(cli: Any, key: str, plain: bytes, *context: str) -> str:
    out = cli("encrypt", "-k", key, "--base64", *context, input=plain)
    assert out.exit_code == 0, out.stderr
    return str(out.stdout.strip())


def test_ciphertext_lines_become_variables(cli: Any, key: str, tmp_path: Path, ran: list[Any]) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# database\n\n"
        f"export DB_PASSWORD={ciphertext(cli, key, SECRET)}\n"
        f'  API_TOKEN = "{ciphertext(cli, key, b"tok en")}"\r\n'
    )
    out = cli("exec", "--env-file", str(env_file), "--", "my-server", "--port", "8080")
    assert (out.exit_code, out.stdout, out.stderr) == (0, "", "")
    [(argv, env)] = ran
    assert argv == ["my-server", "--port", "8080"]
    assert env[b"DB_PASSWORD"] == SECRET and env[b"API_TOKEN"] == b"tok en"
    assert env[b"KMSCTL_HOME"]  # the rest of the environment is passed on


def test_later_files_win_and_the_context_is_checked(cli: Any, key: str, tmp_path: Path, ran: list[Any]) -> None:
    a, b = tmp_path / "a.env", tmp_path / "b.env"
    a.write_text(
        f"X={ciphertext(cli, key, b'from a', '-c', 'app=web')}\nY={ciphertext(cli, key, b'y', '-c', 'app=web')}\n"
    )
    b.write_text(f"X={ciphertext(cli, key, b'from b', '-c', 'app=web')}\n")
    out = cli("exec", "--env-file", str(a), "--env-file", str(b), "cmd")
    assert out.exit_code == 6 and "a.env line 1 (X): " in out.stderr  # no -c: the context does not match
    assert ran == []
    out = cli("exec", "-c", "app=web", "--env-file", str(a), "--env-file", str(b), "cmd")
    assert out.exit_code == 0, out.stderr
    assert ran[0][1][b"X"] == b"from b" and ran[0][1][b"Y"] == b"y"


def test_a_sealed_dotenv(cli: Any, key: str, tmp_path: Path, ran: list[Any]) -> None:
    dotenv = (
        b"# plain values, sealed\n"
        b"DB_PASSWORD=correct-horse-db-pw\n"
        b"export QUOTED='single # kept'\n"
        b'ESCAPED="two\\nlines \\"q\\""\n'
        b"COMMENTED=value # a comment\n"
        b"EMPTY=\n"
    )
    sealed = tmp_path / "prod.env.sealed"
    assert cli("seal", "-k", key, "--out", str(sealed), input=dotenv).exit_code == 0
    out = cli("exec", "--env-file", str(sealed), "--", "cmd")
    assert out.exit_code == 0, out.stderr
    env = ran[0][1]
    assert env[b"DB_PASSWORD"] == SECRET
    assert env[b"QUOTED"] == b"single # kept"
    assert env[b"ESCAPED"] == b'two\nlines "q"'
    assert env[b"COMMENTED"] == b"value" and env[b"EMPTY"] == b""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1BAD=AAAA\n", "line 1: expected NAME=VALUE"),
        ("# ok\nNO_EQUALS_SIGN\n", "line 2: expected NAME=VALUE"),
        ("A-B=AAAA\n", "line 1: expected NAME=VALUE"),
    ],
)
def test_invalid_names_are_refused_with_the_line(
    cli: Any, key: str, tmp_path: Path, ran: list[Any], content: str, message: str
) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text(content)
    out = cli("exec", "--env-file", str(env_file), "cmd")
    assert out.exit_code == 2 and f"ValidationException: {env_file} {message}" in out.stderr
    assert ran == []


def test_a_plain_value_is_refused_without_showing_it(cli: Any, key: str, tmp_path: Path, ran: list[Any]) -> None:
    env_file = tmp_path / "plain.env"
    env_file.write_text("DB_PASSWORD=hunter2 is plain\n")
    out = cli("exec", "--env-file", str(env_file), "cmd")
    assert out.exit_code == 2
    assert "plain.env line 1 (DB_PASSWORD): " in out.stderr and "sealed dotenv" in out.stderr
    assert "hunter2" not in out.stderr
    assert ran == []


def test_a_bad_line_in_a_sealed_dotenv_does_not_show_it(cli: Any, key: str, tmp_path: Path, ran: list[Any]) -> None:
    sealed = tmp_path / "s.env.sealed"
    assert cli("seal", "-k", key, "--out", str(sealed), input=b"A=1\nhunter2-without-a-name\n").exit_code == 0
    out = cli("exec", "--env-file", str(sealed), "cmd")
    assert out.exit_code == 2 and "line 2: expected NAME=VALUE" in out.stderr
    assert "hunter2" not in out.stderr
    assert ran == []


def test_a_tampered_ciphertext_stops_everything(cli: Any, key: str, tmp_path: Path, ran: list[Any]) -> None:
    blob = bytearray(base64.b64decode(ciphertext(cli, key, SECRET)))
    blob[-1] ^= 1
    env_file = tmp_path / "app.env"
    env_file.write_text(f"OK={ciphertext(cli, key, b'ok')}\nBAD={base64.b64encode(bytes(blob)).decode()}\n")
    out = cli("exec", "--env-file", str(env_file), "cmd")
    assert out.exit_code == 6 and "app.env line 2 (BAD): " in out.stderr
    assert ran == []


def test_usage(cli: Any, tmp_path: Path) -> None:
    assert "Missing option '--env-file'" in cli("exec", "--", "true").stderr
    (tmp_path / "e").write_text("")
    assert cli("exec", "--env-file", str(tmp_path / "e")).exit_code == 2  # no CMD
    missing = cli("exec", "--env-file", str(tmp_path / "nope"), "true")
    assert missing.exit_code == 2 and "cannot read env file" in missing.stderr


# ----- the real binary -----


def tree(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for d in folders for p in sorted(d.rglob("*")) if p.is_file()}


def test_the_command_gets_the_secret_and_no_file_does(sub: Any, keyring_home: Path, tmp_path: Path) -> None:
    assert sub("create", "--alias", "alias/app").returncode == 0
    enc = sub("encrypt", "-k", "alias/app", "--base64", input=SECRET)
    work = tmp_path / "work"
    work.mkdir()
    env_file = work / "app.env"
    env_file.write_bytes(b"DB_PASSWORD=" + enc.stdout)
    sealed = work / "more.env.sealed"
    assert sub("seal", "-k", "alias/app", "--out", str(sealed), input=b"API_TOKEN=" + SECRET[::-1]).returncode == 0
    before = tree(keyring_home, work)
    cmd = ["sh", "-c", 'printf "%s %s" "$DB_PASSWORD" "$API_TOKEN"; exit 7']
    in_work = ["env", "-C", str(work)]  # the current directory is checked too
    out = sub("exec", "--env-file", str(env_file), "--env-file", str(sealed), "--", *cmd, prefix=in_work)
    assert (out.returncode, out.stdout, out.stderr) == (7, SECRET + b" " + SECRET[::-1], b"")
    after = tree(keyring_home, work)
    assert set(after) - set(before) <= {str(keyring_home / "keyring.db-wal"), str(keyring_home / "keyring.db-shm")}
    assert not [name for name, data in after.items() if SECRET in data or SECRET[::-1] in data]


def test_kmsctl_becomes_the_command(sub: Any, tmp_path: Path) -> None:
    """exec, not a child: the command has kmsctl's process ID, so signals reach it directly."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("# nothing\n")
    exe = Path(sys.executable).with_name("kmsctl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    env["KMSCTL_HOME"] = str(tmp_path / "nohome")
    proc = subprocess.Popen(
        [str(exe), "exec", "--env-file", str(env_file), "--", "sh", "-c", "echo $$; exec sleep 30"],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) == proc.pid
        proc.terminate()
        assert proc.wait(timeout=10) == -15  # sleep died of the SIGTERM, not kmsctl
    finally:
        proc.kill()
        proc.wait()


def test_command_not_found_and_not_executable(sub: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "e.env"
    env_file.write_text("")
    out = sub("exec", "--env-file", str(env_file), "--", "no-such-command-here")
    assert out.returncode == 127
    assert out.stderr == b"kmsctl: CommandNotFound: no-such-command-here: command not found\n"
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o600)
    out = sub("exec", "--env-file", str(env_file), "--", str(script))
    assert out.returncode == 126 and out.stderr.startswith(b"kmsctl: CommandNotExecutable: ")

"""The command line as README and each command's --help describe it, in-process (``cli``) and as the real
console script (``sub``, ``bare``, ``sh``, a pty) wherever pipes, terminals, signals or sessions matter."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any

import pytest

from kmsctl.cli import COMMANDS

EXE = Path(sys.executable).with_name("kmsctl")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
KEY_ARN = re.compile(rf"^arn:aws:kms:us-east-1:111122223333:key/{UUID}$")
EXPORT_LINE = re.compile(r"^export KMSCTL_SESSION=kmsctl_s1_[A-Za-z0-9_-]+\n\Z")

# every command kmsctl offers or is to offer; the ones that exist today are checked
ALL_COMMANDS = [
    "init", "unlock", "lock", "passwd", "status",
    "create", "describe", "list", "enable", "disable", "update-description", "schedule-delete", "cancel-delete",
    "rotate", "rotation enable", "rotation disable", "rotation status", "rotation list",
    "alias create", "alias update", "alias delete", "alias list", "tag add", "tag remove", "tag list",
    "encrypt", "decrypt", "re-encrypt", "sign", "verify", "hmac", "verify-mac", "random",
    "data-key", "data-key-pair", "public-key", "derive-shared-secret", "seal", "unseal", "inspect",
]  # fmt: skip
HELP_COMMANDS = [c for c in ALL_COMMANDS if c.split()[0] in COMMANDS]


# ----- helpers and fixtures -----


def assert_error(stderr: str | bytes, name: str) -> str:
    """Exactly one line, ``kmsctl: <Name>: <message>``, and no traceback."""
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    assert text.startswith(f"kmsctl: {name}: "), text
    assert len(text) > len(f"kmsctl: {name}: \n")
    assert "Traceback" not in text
    return text


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k != "NO_COLOR"}
    env["KMSCTL_HOME"] = str(home)
    env.update(extra)
    return env


def detached(cmd: list[str], env: dict[str, str], input: bytes | None = None) -> Any:
    """Run with no controlling terminal (a new session), so nothing can prompt or hang."""
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(
        cmd, input=input, stdin=stdin, env=env, capture_output=True, timeout=30, start_new_session=True, check=False
    )


@pytest.fixture
def bare(keyring_home: Path) -> Any:
    """The real binary with no passphrase source at all and no terminal."""

    def invoke(*args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> Any:
        return detached([str(EXE), *args], base_env(keyring_home, **(env or {})), input)

    return invoke


@pytest.fixture
def sh(keyring_home: Path, passfile: Path) -> Any:
    """A bash script with pipefail, $K the installed kmsctl, no terminal."""

    def invoke(script: str, env: dict[str, str] | None = None) -> Any:
        full = base_env(keyring_home, K=str(EXE), KMSCTL_PASSPHRASE_FILE=str(passfile), **(env or {}))
        return detached(["bash", "-c", "set -o pipefail\n" + script], full)

    return invoke


@pytest.fixture
def keys(cli: Any) -> dict[str, str]:
    """Two enabled symmetric keys: alias/app (tagged) and alias/other."""
    app = cli("-o", "text", "create", "--alias", "alias/app", "--description", "app key", "--tag", "team=web")
    other = cli("-o", "text", "create", "--alias", "alias/other", "--description", "other key")
    assert app.exit_code == other.exit_code == 0, app.stderr + other.stderr
    return {"key": app.stdout.strip(), "other": other.stdout.strip()}


def fill(args: list[str], keys: dict[str, str]) -> list[str]:
    return [a.format(**keys) for a in args]


def token_of(result: Any) -> str:
    out = result.stdout.decode() if isinstance(result.stdout, bytes) else result.stdout
    assert EXPORT_LINE.match(out), out
    return out.strip().split("=", 1)[1]


def documented_columns(help_text: str) -> list[str]:
    """The columns a command's --help promises for -o text."""
    flat = " ".join(help_text.split())
    m = re.search(r"Text columns: (.*?)\.(?:\s|$)", flat)
    if m:
        return re.sub(r"\s\([^)]*\)", "", m.group(1)).split()
    m = re.search(r"Text output, one line: (.*?)\.(?:\s|$)", flat)
    assert m, f"--help documents no text columns:\n{help_text}"
    return [c.strip() for c in m.group(1).split(",")]


# ----- init -----


def test_init_new_home_with_passphrase_file(sub: Any, bare: Any, tmp_path: Path, passfile: Path) -> None:
    new_home = tmp_path / "fresh" / "kms"
    secret = tmp_path / "other-pass.txt"
    secret.write_text("another passphrase\n")
    r = sub("--home", str(new_home), "init", "--passphrase-file", str(secret), env={"KMSCTL_PASSPHRASE_FILE": ""})
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split("\t")[0].strip() == str(new_home)
    assert stat.S_IMODE(new_home.stat().st_mode) == 0o700
    assert stat.S_IMODE((new_home / "keyring.db").stat().st_mode) == 0o600
    made = bare("--home", str(new_home), "--passphrase-file", str(secret), "-o", "text", "create")
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(UUID + "\n", made.stdout.decode())
    for f in new_home.iterdir():  # the WAL and shared-memory files too
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f
    wrong = bare("--home", str(new_home), "--passphrase-file", str(passfile), "list")
    assert wrong.returncode == 5
    assert_error(wrong.stderr, "AccessDeniedException")


def test_init_no_passphrase_is_unprotected_and_needs_nothing(sub: Any, bare: Any, tmp_path: Path) -> None:
    new_home = str(tmp_path / "open")
    r = sub("--home", new_home, "init", "--no-passphrase", env={"KMSCTL_PASSPHRASE_FILE": ""})
    assert r.returncode == 0, r.stderr
    assert b"UNPROTECTED" in r.stderr
    st = bare("--home", new_home, "status")
    assert st.returncode == 0
    assert b"WARNING" in st.stderr and b"no passphrase" in st.stderr.lower()
    assert b"unprotected" in st.stdout
    key = bare("--home", new_home, "-o", "text", "create").stdout.decode().strip()
    assert re.fullmatch(UUID, key)
    blob = bare("--home", new_home, "encrypt", "-k", key, input=b"open secret")
    assert blob.returncode == 0, blob.stderr
    back = bare("--home", new_home, "decrypt", input=blob.stdout)
    assert (back.returncode, back.stdout) == (0, b"open secret")


def test_init_twice_is_a_conflict(cli: Any, sub: Any, keyring_home: Path) -> None:
    before = (keyring_home / "keyring.db").read_bytes()
    r = cli("init")
    assert r.exit_code == 7
    assert_error(r.stderr, "AlreadyExistsException")
    s = sub("--home", str(keyring_home), "init", "--no-passphrase", env={"KMSCTL_PASSPHRASE_FILE": ""})
    assert s.returncode == 7
    assert_error(s.stderr, "AlreadyExistsException")
    assert (keyring_home / "keyring.db").read_bytes() == before


@pytest.mark.parametrize("option", [
    ["--region", "US"], ["--region", "us-east"], ["--region", ""],
    ["--account", "12"], ["--account", "1234567890123"], ["--account", "abcdefghijkl"],
    ["--no-passphrase", "--passphrase-file", "pass.txt"],
])  # fmt: skip
def test_init_validates_region_and_account(cli: Any, tmp_path: Path, option: list[str]) -> None:
    new_home = tmp_path / "bad"
    r = cli("--home", str(new_home), "init", *option)
    assert r.exit_code == 2
    assert_error(r.stderr, "UsageError")
    assert not (new_home / "keyring.db").exists()


def test_init_region_and_account_go_into_arns(cli: Any, tmp_path: Path) -> None:
    new_home = str(tmp_path / "eu")
    assert cli("--home", new_home, "init", "--region", "eu-west-3", "--account", "444455556666").exit_code == 0
    key = cli("--home", new_home, "-o", "text", "create").stdout.strip()
    md = json.loads(cli("--home", new_home, "-o", "json", "describe", key).stdout)["KeyMetadata"]
    assert md["Arn"] == f"arn:aws:kms:eu-west-3:444455556666:key/{key}"


def test_init_without_passphrase_source_or_terminal_fails_fast(tmp_path: Path) -> None:
    new_home = tmp_path / "nopass"
    r = detached([str(EXE), "--home", str(new_home), "init"], base_env(new_home))
    assert r.returncode == 5
    assert_error(r.stderr, "AccessDeniedException")
    assert not (new_home / "keyring.db").exists()


# ----- unlock, lock, sessions, passwd -----


def test_session_unlocks_until_lock(sub: Any, bare: Any, keys: dict[str, str]) -> None:
    token = token_of(sub("unlock", "--shell"))
    enc = bare("encrypt", "-k", "alias/app", input=b"in session", env={"KMSCTL_SESSION": token})
    assert enc.returncode == 0, enc.stderr
    dec = bare("decrypt", input=enc.stdout, env={"KMSCTL_SESSION": token})
    assert (dec.returncode, dec.stdout) == (0, b"in session")
    assert b"unlocked" in bare("status", env={"KMSCTL_SESSION": token}).stdout
    lock = bare("lock")
    assert lock.returncode == 0 and lock.stdout == b""
    after = bare("encrypt", "-k", "alias/app", input=b"x", env={"KMSCTL_SESSION": token})
    assert after.returncode == 5
    assert_error(after.stderr, "AccessDeniedException")
    assert after.stdout == b""


def test_expired_session(sub: Any, bare: Any, keys: dict[str, str]) -> None:
    token = token_of(sub("unlock", "--ttl", "1s", "--shell"))
    time.sleep(2)
    r = bare("describe", "alias/app", env={"KMSCTL_SESSION": token})
    assert r.returncode == 5
    assert "expired" in assert_error(r.stderr, "AccessDeniedException")
    assert b"locked" in bare("status", env={"KMSCTL_SESSION": token}).stdout


def test_session_of_another_keyring_is_refused(cli: Any, sub: Any, bare: Any, tmp_path: Path, passfile: Path) -> None:
    other_home = str(tmp_path / "second")
    assert cli("--home", other_home, "init", "--passphrase-file", str(passfile)).exit_code == 0
    token = token_of(sub("unlock", "--shell"))
    r = bare("--home", other_home, "list", env={"KMSCTL_SESSION": token})
    assert r.returncode == 5
    assert_error(r.stderr, "AccessDeniedException")


@pytest.mark.parametrize("token", ["nonsense", "kmsctl_s1_AAAA", "kmsctl_s1_" + "A" * 64])
def test_bad_session_token(bare: Any, token: str) -> None:
    r = bare("list", env={"KMSCTL_SESSION": token})
    assert r.returncode == 5
    assert_error(r.stderr, "AccessDeniedException")


@pytest.mark.parametrize(("ttl", "code"), [
    ("0", 2), ("0s", 2), ("abc", 2), ("31d", 2), ("-5m", 2), ("1w", 2), ("2.5h", 2),
    ("90", 0), ("90s", 0), ("15m", 0), ("8h", 0), ("30d", 0),
])  # fmt: skip
def test_unlock_ttl(cli: Any, ttl: str, code: int) -> None:
    r = cli("unlock", "--ttl", ttl, "--shell")
    assert r.exit_code == code, r.stderr
    if code:
        assert "--ttl" in assert_error(r.stderr, "UsageError")
        assert r.stdout == "false\n"  # so that eval "$(kmsctl unlock --shell)" fails
    else:
        assert EXPORT_LINE.match(r.stdout)


SOURCES = [  # README "Unlocking": --passphrase-file, KMSCTL_PASSPHRASE_FILE, KMSCTL_PASSPHRASE, in that order
    (["--passphrase-file", "{bad}"], {"KMSCTL_PASSPHRASE_FILE": "{good}"}, 5),
    (["--passphrase-file", "{good}"], {"KMSCTL_PASSPHRASE_FILE": "{bad}"}, 0),
    ([], {"KMSCTL_PASSPHRASE_FILE": "{bad}"}, 5),
    ([], {"KMSCTL_PASSPHRASE": "wrong"}, 5),
    ([], {"KMSCTL_PASSPHRASE": "{secret}"}, 0),
    ([], {"KMSCTL_PASSPHRASE_FILE": "{bad}", "KMSCTL_PASSPHRASE": "{secret}"}, 5),
    ([], {"KMSCTL_PASSPHRASE_FILE": "{good}", "KMSCTL_PASSPHRASE": "wrong"}, 0),
]


@pytest.mark.parametrize(("args", "env", "code"), SOURCES)
def test_passphrase_sources(bare: Any, tmp_path: Path, passfile: Path, args: list[str], env: dict, code: int) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("not the passphrase\n")
    values = {"bad": str(bad), "good": str(passfile), "secret": passfile.read_text().strip()}
    r = bare(*fill(args, values), "list", env={k: v.format(**values) for k, v in env.items()})
    assert r.returncode == code, r.stderr
    if code:
        message = assert_error(r.stderr, "AccessDeniedException")
        assert message.startswith("kmsctl: AccessDeniedException: wrong passphrase") and r.stdout == b""


@pytest.mark.parametrize("command", [["list"], ["encrypt", "-k", "alias/app"], ["unlock"], ["create"]])
def test_locked_without_source_or_terminal(bare: Any, command: list[str]) -> None:
    r = bare(*command, input=b"x")
    assert r.returncode == 5
    assert "unlock" in assert_error(r.stderr, "AccessDeniedException")
    assert r.stdout == b""


def test_passwd(cli: Any, sub: Any, bare: Any, keys: dict[str, str], passfile: Path, tmp_path: Path) -> None:
    new, wrong = tmp_path / "new.txt", tmp_path / "wrong.txt"
    new.write_text("a brand new passphrase\n")
    wrong.write_text("wrong\n")
    blob = cli("encrypt", "-k", "alias/app", input=b"kept").stdout_bytes
    token = token_of(sub("unlock", "--shell"))
    refused = cli("passwd", "--passphrase-file", str(wrong), "--new-passphrase-file", str(new))
    assert refused.exit_code == 5
    assert_error(refused.stderr, "AccessDeniedException")
    assert bare("list", env={"KMSCTL_SESSION": token}).returncode == 0  # nothing changed
    r = cli("passwd", "--passphrase-file", str(passfile), "--new-passphrase-file", str(new))
    assert (r.exit_code, r.stdout) == (0, ""), r.stderr
    old = bare("--passphrase-file", str(passfile), "list")
    assert old.returncode == 5
    assert "wrong passphrase" in assert_error(old.stderr, "AccessDeniedException")
    ended = bare("list", env={"KMSCTL_SESSION": token})
    assert ended.returncode == 5
    assert_error(ended.stderr, "AccessDeniedException")
    dec = bare("--passphrase-file", str(new), "decrypt", input=blob)
    assert (dec.returncode, dec.stdout) == (0, b"kept"), dec.stderr


# ----- output shapes -----


def test_text_list_cut_f1_gives_key_ids(sh: Any, cli: Any, keys: dict[str, str]) -> None:
    third = cli("-o", "text", "create").stdout.strip()
    r = sh('"$K" -o text list | cut -f1')
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.decode().split()) == sorted([keys["key"], keys["other"], third])


def test_list_text_row(cli: Any, keys: dict[str, str]) -> None:
    assert cli("alias", "create", "alias/app-2", "alias/app").exit_code == 0
    columns = documented_columns(cli("list", "--help").stdout)
    rows = [line.split("\t") for line in cli("-o", "text", "list").stdout.splitlines()]
    row = dict(zip(columns, next(r for r in rows if r[0] == keys["key"]), strict=True))
    assert row["KeyId"] == keys["key"]
    assert (row["KeyState"], row["KeySpec"], row["KeyUsage"]) == ("Enabled", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert sorted(row["Aliases(comma-separated)"].split(",")) == ["alias/app", "alias/app-2"]
    assert row["Description"] == "app key"


@pytest.mark.parametrize("args", [
    ["describe", "alias/app"], ["list"], ["alias", "list"], ["tag", "list", "alias/app"],
    ["data-key", "-k", "alias/app"], ["status"], ["schedule-delete", "{other}", "--days", "7"],
], ids=lambda a: "-".join(a[:2]) if a[0] in ("alias", "tag") else a[0])  # fmt: skip
def test_text_columns_are_the_documented_ones(cli: Any, keys: dict[str, str], args: list[str]) -> None:
    h = cli(*args[: 2 if args[0] in ("alias", "tag") else 1], "--help")
    assert h.exit_code == 0
    columns = documented_columns(h.stdout)
    r = cli("-o", "text", *fill(args, keys))
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines
    for line in lines:
        assert len(line.split("\t")) == len(columns), (columns, line)


@pytest.mark.parametrize("args", [
    ["create"], ["alias", "create", "alias/new", "alias/app"], ["unlock"], ["--home", "{home}/new", "init"],
], ids=["create", "alias-create", "unlock", "init"])  # fmt: skip
def test_text_output_of_single_value_commands(cli: Any, keys: dict[str, str], tmp_path: Path, args: list[str]) -> None:
    """'Text output: the X' in --help: one line, one field."""
    r = cli("-o", "text", *fill(args, {**keys, "home": str(tmp_path)}))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1
    assert "\t" not in r.stdout, r.stdout


def test_json_describe_is_the_aws_shape(cli: Any, keys: dict[str, str]) -> None:
    r = cli("-o", "json", "describe", "alias/app")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert list(doc) == ["KeyMetadata"]
    md = doc["KeyMetadata"]
    assert md["KeyId"] == keys["key"]
    assert KEY_ARN.match(md["Arn"])
    expected = ("Enabled", True, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", "111122223333")
    assert (md["KeyState"], md["Enabled"], md["KeyUsage"], md["KeySpec"], md["AWSAccountId"]) == expected
    assert datetime.fromisoformat(md["CreationDate"]).utcoffset() == timedelta(0)
    assert cli("schedule-delete", "alias/app", "--days", "7").exit_code == 0
    md = json.loads(cli("-o", "json", "describe", keys["key"]).stdout)["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion"
    created, deleted = datetime.fromisoformat(md["CreationDate"]), datetime.fromisoformat(md["DeletionDate"])
    assert deleted.utcoffset() == timedelta(0)
    assert timedelta(days=6, hours=23) < deleted - created < timedelta(days=7, hours=1)


def test_json_encrypt_is_the_aws_shape(sub: Any, keys: dict[str, str]) -> None:
    r = sub("-o", "json", "encrypt", "-k", "alias/app", input=b"json me")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"CiphertextBlob", "KeyId", "EncryptionAlgorithm"} <= set(doc)
    assert base64.b64decode(doc["CiphertextBlob"], validate=True)[0] == 0xA9
    assert KEY_ARN.match(doc["KeyId"]) and doc["KeyId"].endswith(keys["key"])
    assert doc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    dec = sub("-o", "json", "decrypt", input=doc["CiphertextBlob"].encode())
    assert base64.b64decode(json.loads(dec.stdout)["Plaintext"]) == b"json me"


@pytest.mark.parametrize("args", [["list"], ["describe", "alias/app"]])
def test_text_escapes_tabs_and_newlines(cli: Any, keys: dict[str, str], args: list[str]) -> None:
    assert cli("update-description", "alias/app", "one\ttwo\nthree\\four").exit_code == 0
    out = cli("-o", "text", *args).stdout
    line = next(x for x in out.splitlines() if x.startswith(keys["key"]))
    assert line.split("\t")[-1] == "one\\ttwo\\nthree\\\\four"
    assert len(out.splitlines()) == (2 if args == ["list"] else 1)


@pytest.mark.parametrize("quiet", [False, True])
@pytest.mark.parametrize(("args", "prints"), [
    (["disable", "alias/app"], False), (["lock"], False),
    (["alias", "delete", "alias/app"], False), (["schedule-delete", "alias/app", "--days", "7"], True),
    (["unlock", "--shell"], True),
])  # fmt: skip
def test_stdout_holds_results_and_stderr_messages(
    sub: Any, keys: dict[str, str], args: list[str], prints: bool, quiet: bool
) -> None:
    r = sub(*(["-q"] if quiet else []), *args)
    assert r.returncode == 0, r.stderr
    assert bool(r.stdout) == prints
    assert b"kmsctl:" not in r.stdout
    if quiet:
        assert r.stderr == b""
    else:
        assert r.stderr.startswith(b"kmsctl: ") and b"Traceback" not in r.stderr


def test_list_pages_with_the_marker_on_stderr(sub: Any, keys: dict[str, str]) -> None:
    first = sub("-o", "text", "list", "--limit", "1")
    assert first.returncode == 0 and len(first.stdout.splitlines()) == 1
    marker = re.search(rb"--marker (\S+)", first.stderr)
    assert marker, first.stderr
    rest = sub("-o", "text", "list", "--marker", marker.group(1).decode())
    ids = {line.split(b"\t")[0].decode() for line in (first.stdout + rest.stdout).splitlines()}
    assert ids == {keys["key"], keys["other"]}
    assert sub("-q", "-o", "text", "list", "--limit", "1").stderr == b""


# ----- data in and out -----


ROUND_TRIP = 'printf s | "$K" encrypt -k alias/app | "$K" decrypt'
SCRIPTS = {  # README "In scripts" and `kmsctl unlock --help`, as a shell runs them
    "pipe": (ROUND_TRIP, b"s"),
    "variable": ('printf "x\\0\\377\\n" > "$F"\nC=$("$K" encrypt -k alias/app --base64 < "$F")\n'
                 'printf %s "$C" | "$K" decrypt', b"x\x00\xff\n"),
    "folded-base64": ('printf s | "$K" encrypt -k alias/app --base64 | fold -w 16 | "$K" decrypt', b"s"),
    "raw-first-byte": ('printf s | "$K" encrypt -k alias/app | head -c1 | od -An -tx1 | tr -d " \\n"', b"a9"),
    "eval-unlock-shell": ('eval "$("$K" unlock --shell)"; unset KMSCTL_PASSPHRASE_FILE\n' + ROUND_TRIP, b"s"),
    "session-from-unlock": ('export KMSCTL_SESSION=$("$K" unlock); unset KMSCTL_PASSPHRASE_FILE\n' + ROUND_TRIP, b"s"),
}  # fmt: skip


@pytest.mark.parametrize("name", SCRIPTS)
def test_shell_scripts(sh: Any, keys: dict[str, str], tmp_path: Path, name: str) -> None:
    script, expected = SCRIPTS[name]
    r = sh(script, env={"F": str(tmp_path / "f")})
    assert (r.returncode, r.stdout) == (0, expected), r.stderr


@pytest.mark.parametrize("how", ["stdin", "file", "wrapped-76", "wrapped-20-crlf", "trailing-newline"])
def test_decrypt_accepts_base64(cli: Any, keys: dict[str, str], tmp_path: Path, how: str) -> None:
    enc = cli("encrypt", "-k", "alias/app", "--base64", input=b"b64 plaintext")
    assert enc.exit_code == 0
    text = enc.stdout.strip()
    assert base64.b64decode(text, validate=True)[0] == 0xA9
    width, sep = {"wrapped-76": (76, "\n"), "wrapped-20-crlf": (20, "\r\n")}.get(how, (len(text), ""))
    text = sep.join(text[i : i + width] for i in range(0, len(text), width)) + ("\n" if how != "stdin" else "")
    path = tmp_path / "c.b64"
    path.write_text(text)
    dec = cli("decrypt", str(path)) if how == "file" else cli("decrypt", input=text.encode())
    assert (dec.exit_code, dec.stdout_bytes) == (0, b"b64 plaintext"), dec.stderr


def test_input_as_a_file_path(cli: Any, keys: dict[str, str], tmp_path: Path) -> None:
    plain, blob = tmp_path / "plain", tmp_path / "blob"
    plain.write_bytes(b"from a file")
    enc = cli("encrypt", "-k", "alias/app", str(plain))
    assert enc.exit_code == 0
    blob.write_bytes(enc.stdout_bytes)
    assert cli("decrypt", str(blob)).stdout_bytes == b"from a file"
    assert cli("decrypt", "-", input=enc.stdout_bytes).stdout_bytes == b"from a file"


@pytest.mark.parametrize(
    ("content", "code"),
    [(None, 2), (b"", 2), (b"x" * 4097, 2), (b"x" * 4096, 0), (b"x", 0)],
    ids=["missing-file", "empty", "4097-bytes", "4096-bytes", "1-byte"],
)
def test_plaintext_limits(
    cli: Any, sub: Any, keys: dict[str, str], tmp_path: Path, content: bytes | None, code: int
) -> None:
    path = tmp_path / "plain"
    if content is not None:
        path.write_bytes(content)
    r = cli("encrypt", "-k", "alias/app", str(path))
    assert r.exit_code == code, r.stderr
    if code:
        assert_error(r.stderr, "ValidationException")
        assert r.stdout_bytes == b""
    if content is not None:  # the same through a real pipe
        assert sub("encrypt", "-k", "alias/app", input=content).returncode == code


@pytest.mark.parametrize(("context", "code"), [
    (["-c", "env=prod", "-c", "app=web"], 0), ([], 6), (["-c", "app=web"], 6),
    (["-c", "app=web", "-c", "env=dev"], 6), (["-c", "app=web", "-c", "env=prod", "-c", "x=y"], 6),
])  # fmt: skip
def test_encryption_context_must_match(cli: Any, keys: dict[str, str], context: list[str], code: int) -> None:
    blob = cli("encrypt", "-k", "alias/app", "-c", "app=web", "-c", "env=prod", input=b"ctx").stdout_bytes
    r = cli("decrypt", *context, input=blob)
    assert r.exit_code == code, r.stderr
    if code:
        assert_error(r.stderr, "InvalidCiphertextException")
        assert r.stdout_bytes == b""
    else:
        assert r.stdout_bytes == b"ctx"


@pytest.mark.parametrize("form", ["{key}", "arn:aws:kms:us-east-1:111122223333:key/{key}", "alias/app",
                                  "arn:aws:kms:us-east-1:111122223333:alias/app"])  # fmt: skip
def test_decrypt_checks_the_key(cli: Any, keys: dict[str, str], form: str) -> None:
    blob = cli("encrypt", "-k", form.format(**keys), input=b"k").stdout_bytes
    assert cli("decrypt", "-k", form.format(**keys), input=blob).stdout_bytes == b"k"
    wrong = cli("decrypt", "-k", "alias/other", input=blob)
    assert wrong.exit_code == 6
    assert_error(wrong.stderr, "IncorrectKeyException")


@pytest.mark.parametrize("where", [0, 1, 5, 40, -1, "truncate", "append"])
def test_tampered_ciphertext_is_rejected(cli: Any, keys: dict[str, str], where: int | str) -> None:
    blob = bytearray(cli("encrypt", "-k", "alias/app", input=b"tamper").stdout_bytes)
    if where == "truncate":
        blob = blob[:-1]
    elif where == "append":
        blob += b"\x00"
    else:
        assert isinstance(where, int)
        blob[where] ^= 0x01
    r = cli("decrypt", input=bytes(blob))
    assert r.exit_code == 6, r.stderr
    assert_error(r.stderr, "InvalidCiphertextException")
    assert r.stdout_bytes == b""


@pytest.mark.parametrize(("args", "size"), [(["--bytes", "16"], 16), ([], 32)])
def test_random_raw_bytes_in_a_pipe(sub: Any, args: list[str], size: int) -> None:
    r = sub("random", *args)
    assert (r.returncode, len(r.stdout), r.stderr) == (0, size, b"")
    b64 = sub("random", *args, "--base64")
    assert len(base64.b64decode(b64.stdout.strip(), validate=True)) == size


@pytest.mark.parametrize(("args", "name"), [
    (["random", "--bytes", "0"], "ValidationException"), (["random", "--bytes", "1025"], "ValidationException"),
    (["random", "--bytes", "-1"], "ValidationException"),
    (["data-key", "-k", "alias/app", "--bytes", "0"], "ValidationException"),
    (["data-key", "-k", "alias/app", "--bytes", "1025"], "ValidationException"),
    (["data-key", "-k", "alias/app", "--spec", "AES_128", "--bytes", "16"], "UsageError"),
])  # fmt: skip
def test_bad_sizes(cli: Any, keys: dict[str, str], args: list[str], name: str) -> None:
    r = cli(*args)
    assert (r.exit_code, r.stdout) == (2, "")
    assert_error(r.stderr, name)


@pytest.mark.parametrize(
    ("args", "size"), [([], 32), (["--spec", "AES_128"], 16), (["--spec", "aes_256"], 32), (["--bytes", "24"], 24)]
)
def test_data_key_text_columns(cli: Any, keys: dict[str, str], args: list[str], size: int) -> None:
    r = cli("-o", "text", "data-key", "-k", "alias/app", *args)
    assert r.exit_code == 0, r.stderr
    blob, plain, key_arn = r.stdout.rstrip("\n").split("\t")
    assert KEY_ARN.match(key_arn) and key_arn.endswith(keys["key"])
    assert len(base64.b64decode(plain, validate=True)) == size
    assert cli("decrypt", input=blob.encode()).stdout_bytes == base64.b64decode(plain)
    np = cli("-o", "text", "data-key", "-k", "alias/app", *args, "--no-plaintext").stdout.rstrip("\n").split("\t")
    assert len(np) == 2 and KEY_ARN.match(np[1])


def test_re_encrypt_to_another_alias(sub: Any, keys: dict[str, str]) -> None:
    blob = sub("encrypt", "-k", "alias/app", "-c", "a=1", input=b"moving").stdout
    r = sub("re-encrypt", "-k", "alias/other", "--source-context", "a=1", "-c", "b=2", input=blob)
    assert r.returncode == 0, r.stderr
    assert r.stdout[0] == 0xA9
    dec = sub("decrypt", "-k", "alias/other", "-c", "b=2", input=r.stdout)
    assert (dec.returncode, dec.stdout) == (0, b"moving"), dec.stderr
    wrong = sub("decrypt", "-k", "alias/app", "-c", "b=2", input=r.stdout)
    assert wrong.returncode == 6
    assert_error(wrong.stderr, "IncorrectKeyException")
    no_ctx = sub("re-encrypt", "-k", "alias/other", input=blob)
    assert no_ctx.returncode == 6
    assert_error(no_ctx.stderr, "InvalidCiphertextException")


def on_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """kmsctl's stdout on a pseudo-terminal (and no controlling terminal)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([str(EXE), *args], stdin=DEVNULL, stdout=slave, stderr=PIPE, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    with contextlib.suppress(OSError):  # EIO once every writer has closed the terminal
        while chunk := os.read(master, 65536):
            out += chunk
    os.close(master)
    assert p.wait(timeout=30) == 0, p.stderr.read() if p.stderr else b""
    return out.replace(b"\r\n", b"\n")


def test_binary_results_on_a_terminal_are_base64(
    cli: Any, keys: dict[str, str], keyring_home: Path, passfile: Path
) -> None:
    env = base_env(keyring_home, KMSCTL_PASSPHRASE_FILE=str(passfile))
    assert len(base64.b64decode(on_terminal(["random", "--bytes", "16"], env).strip(), validate=True)) == 16
    plain = keyring_home.parent / "plain"
    plain.write_bytes(b"on a tty")
    text = on_terminal(["encrypt", "-k", "alias/app", str(plain)], env)
    assert base64.b64decode(text.strip(), validate=True)[0] == 0xA9
    assert cli("decrypt", input=text).stdout_bytes == b"on a tty"


@pytest.mark.parametrize(
    ("args", "extra"), [(["list"], {}), (["--no-color", "list"], {}), (["list"], {"NO_COLOR": "1"})]
)
def test_auto_output_on_a_terminal_is_a_table(
    keys: dict[str, str], keyring_home: Path, passfile: Path, args: list[str], extra: dict[str, str]
) -> None:
    out = on_terminal(args, base_env(keyring_home, KMSCTL_PASSPHRASE_FILE=str(passfile), **extra))
    assert keys["key"].encode() in out and b"\t" not in out
    if "--no-color" in args or extra:
        assert b"\x1b[" not in out, out  # plain output even on a terminal


# ----- exit codes and one-line errors -----


@pytest.mark.parametrize("args", [
    ["frobnicate"], ["--frobnicate", "list"], ["list", "--frobnicate"], ["encrypt"], ["-o", "yaml", "list"],
], ids=" ".join)  # fmt: skip
def test_usage_errors(sub: Any, args: list[str]) -> None:
    r = sub(*args)
    assert r.returncode == 2
    assert_error(r.stderr, "UsageError")
    assert r.stdout == b""


ERROR_CASES = [
    ([], ["describe", "00000000-0000-0000-0000-000000000000"], 3, "NotFoundException"),
    ([], ["describe", "alias/nope"], 3, "NotFoundException"),
    ([], ["-q", "describe", "alias/nope"], 3, "NotFoundException"),  # -q keeps errors
    ([], ["enable", "alias/nope"], 3, "NotFoundException"),
    ([], ["alias", "delete", "alias/nope"], 3, "NotFoundException"),
    ([["disable", "{key}"]], ["encrypt", "-k", "alias/app"], 4, "DisabledException"),
    ([["schedule-delete", "{key}", "--days", "7"]], ["encrypt", "-k", "alias/app"], 4, "KMSInvalidStateException"),
    ([], ["cancel-delete", "{key}"], 4, "KMSInvalidStateException"),
    ([], ["alias", "create", "alias/app", "{other}"], 7, "AlreadyExistsException"),
    ([], ["create", "--alias", "alias/other"], 7, "AlreadyExistsException"),
    ([], ["alias", "create", "bad-name", "{key}"], 2, "ValidationException"),
    ([], ["alias", "create", "alias/aws/mine", "{key}"], 2, "InvalidAliasNameException"),
    ([], ["tag", "add", "{key}", "aws:owner=me"], 2, "TagException"),
    ([], ["tag", "add", "{key}", "novalue"], 2, "UsageError"),
    ([], ["schedule-delete", "{key}", "--days", "6"], 2, "ValidationException"),
    ([], ["schedule-delete", "{key}", "--days", "31"], 2, "ValidationException"),
    ([], ["create", "--key-spec", "FOO"], 2, "UsageError"),
    ([], ["list", "--limit", "0"], 2, "ValidationException"),
]


@pytest.mark.parametrize(("setup", "args", "code", "name"), ERROR_CASES, ids=[" ".join(c[1]) for c in ERROR_CASES])
def test_error_exit_codes(
    cli: Any, sub: Any, keys: dict[str, str], setup: list[list[str]], args: list[str], code: int, name: str
) -> None:
    for step in setup:
        assert cli(*fill(step, keys)).exit_code == 0
    before = cli("-o", "text", "list").stdout
    r = sub(*fill(args, keys), input=b"x")
    assert r.returncode == code, r.stderr
    assert_error(r.stderr, name)
    assert r.stdout == b""
    if not setup:
        assert cli("-o", "text", "list").stdout == before  # a failed command changes nothing


@pytest.mark.parametrize("args", [["list"], ["status"], ["describe", "alias/app"], ["lock"]], ids=" ".join)
def test_no_keyring_at_home(sub: Any, tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nowhere"
    r = sub("--home", str(missing), *args)
    assert r.returncode == 3
    assert "kmsctl init" in assert_error(r.stderr, "NotFoundException")
    assert not missing.exists()


def test_broken_pipe_on_random_ends_quietly(keyring_home: Path, passfile: Path) -> None:
    env = base_env(keyring_home, KMSCTL_PASSPHRASE_FILE=str(passfile))
    p = subprocess.Popen([str(EXE), "random", "--bytes", "1024"], stdout=PIPE, stderr=PIPE, stdin=DEVNULL, env=env)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # the reader is gone before kmsctl writes
    err = p.stderr.read()
    assert p.wait(timeout=20) == 0
    assert err == b""


@pytest.mark.parametrize("pipeline", ["random --bytes 1024 | head -c1", "list | head -n1", "-o json list | head -c1"])
def test_broken_pipe_in_a_shell_ends_quietly(cli: Any, sh: Any, pipeline: str) -> None:
    for _ in range(10 if "list" in pipeline else 0):  # 80 KiB of listing, more than a pipe holds
        assert cli("create", "--description", "d" * 8192).exit_code == 0
    r = sh('"$K" ' + pipeline)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    assert len(r.stdout) >= 1


@pytest.mark.parametrize("args", [["encrypt", "-k", "alias/app"], ["decrypt"]])
def test_sigint_while_reading_stdin_exits_130(
    keyring_home: Path, passfile: Path, keys: dict[str, str], args: list[str]
) -> None:
    env = base_env(keyring_home, KMSCTL_PASSPHRASE_FILE=str(passfile))
    p = subprocess.Popen([str(EXE), *args], stdin=PIPE, stdout=PIPE, stderr=PIPE, env=env)
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130
    assert out == b""
    assert b"Traceback" not in err and err.count(b"\n") <= 1


# ----- help and version -----


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"]])
def test_help_and_version(sub: Any, args: list[str]) -> None:
    r = sub(*args)
    assert r.returncode == 0
    assert r.stdout and r.stderr == b""
    if args == ["--version"]:
        assert re.fullmatch(rb"kmsctl \d+\.\d+\S*\n", r.stdout)
    else:
        for name in COMMANDS:
            assert name.encode() in r.stdout


@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_every_command_has_help(cli: Any, command: str) -> None:
    r = cli(*command.split(), "--help")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"Usage: kmsctl {command}")
    if command in ("describe", "list", "alias list", "tag list", "data-key", "status"):
        assert documented_columns(r.stdout)

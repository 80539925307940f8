"""Prompts that never hang and hints that fix: --no-input and CI, unlock
--shell under set -e, retries at the prompt, passphrase warnings, the
wrong-passphrase source, the hints for oversized input, sealed files, bare
alias words and mistyped commands, the aws kms command names, global options
after the command, and bare ``kmsctl``.

The prompt tests run the real binary on a pseudo-terminal (its controlling
terminal, so /dev/tty is the PTY) and answer the prompts as a person would."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from conftest import PASSPHRASE

from kmsctl.cli import AWS_COMMANDS, COMMANDS, cli
from kmsctl.cli.app import no_input_reason
from kmsctl.keyring import unlock as unlock_mod

EXE = Path(sys.executable).with_name("kmsctl")
BUDGET_S = 1.0  # what may prompt under --no-input / CI fails within this


def one_error(stderr: str | bytes, name: str) -> str:
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert text.count("\n") == 1 and text.startswith(f"kmsctl: {name}: "), repr(text)
    return text


def hint_of(line: str) -> str:
    m = re.search(r"\(hint: (.*)\)\n?$", line)
    assert m, line
    return m.group(1)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k not in ("NO_COLOR", "CI")}
    env["KMSCTL_HOME"] = str(home)
    env.update(extra)
    return env


class Pty:
    """The real binary with a pseudo-terminal as its controlling terminal and
    its stdin, stdout and stderr: what an operator, ``docker run -t`` or a CI
    runner's PTY gives it."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # keep the typed answers out of the transcript
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            [str(EXE), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.out = b""
        self.seen = 0  # read_until looks past its last match, so a prompt read early is not lost

    def read_until(self, text: bytes, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.out[self.seen :]:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{text!r} never appeared in {self.out[self.seen :]!r}")
        self.seen = self.out.index(text, self.seen) + len(text)
        return self.out

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.out += chunk
        return bool(chunk)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 10) -> tuple[int, float]:
        """(exit code, seconds since start); kills the child on timeout."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running after {timeout} s: {self.out!r}") from None
        elapsed = time.monotonic() - self.start
        while self._read(0.05):
            pass
        os.close(self.master)
        return code, elapsed


# ----- --no-input, KMSCTL_NO_INPUT, CI -----


@pytest.mark.parametrize(
    ("flag", "env", "reason"),
    [
        (False, {}, None),
        (True, {}, "--no-input"),
        (False, {"CI": "true"}, "CI=true"),
        (False, {"CI": "1"}, "CI=1"),
        (False, {"CI": "woodpecker"}, "CI=woodpecker"),
        (False, {"CI": "false"}, None),
        (False, {"CI": "0"}, None),
        (False, {"CI": ""}, None),
        (False, {"KMSCTL_NO_INPUT": "1"}, "KMSCTL_NO_INPUT"),
        (False, {"KMSCTL_NO_INPUT": "0", "CI": "true"}, None),  # the explicit setting wins over CI
        (True, {"KMSCTL_NO_INPUT": "0"}, "--no-input"),
    ],
)
def test_when_prompting_is_off(flag: bool, env: dict[str, str], reason: str | None) -> None:
    assert no_input_reason(flag, env) == reason


def _never_prompt(text: str) -> str:
    raise AssertionError(f"prompted: {text!r}")


@pytest.mark.parametrize(
    "how", [["--no-input"], ["LATE"], [], []], ids=["flag", "flag-after-command", "KMSCTL_NO_INPUT", "CI"]
)
def test_no_input_never_calls_the_prompt(
    cli: Any, monkeypatch: pytest.MonkeyPatch, how: list[str], request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(unlock_mod, "terminal_prompt", _never_prompt)
    case = request.node.callspec.id
    env: dict[str, str | None] = {"KMSCTL_PASSPHRASE_FILE": None}
    if case == "KMSCTL_NO_INPUT":
        env["KMSCTL_NO_INPUT"] = "1"
    if case == "CI":
        env["CI"] = "true"
    args = ["list", "--no-input"] if how == ["LATE"] else [*how, "list"]
    r = cli(*args, env=env)
    assert r.exit_code == 5
    line = one_error(r.stderr, "AccessDeniedException")
    assert "prompting is off" in line and "unlock" in hint_of(line)


# what needs the keyring unlocked, with the arguments to get that far
KEYRING_COMMANDS = [
    "list", "describe {key}", "create", "enable {key}", "disable {key}", "update-description {key} text",
    "schedule-delete {key}", "cancel-delete {key}", "rotate {key}", "rotation enable {key}",
    "rotation disable {key}", "rotation status {key}", "rotation list {key}", "maintain",
    "alias create alias/new {key}", "alias update alias/app {key}", "alias delete alias/app", "alias list",
    "tag add {key} a=b", "tag remove {key} a", "tag list {key}", "encrypt -k {key} {file}",
    "decrypt {file}", "re-encrypt -k {key} {file}", "data-key -k {key}", "data-key-pair -k {key} --spec RSA_2048",
    "sign -k {key} {file}", "verify -k {key} --signature {file} {file}", "hmac -k {key} {file}",
    "verify-mac -k {key} --mac {file} {file}", "public-key {key}", "derive-shared-secret -k {key} --public-key {file}",
    "seal -k {key} --out {file}.sealed {file}", "unseal {sealed}", "audit list", "audit export", "audit verify",
    "unlock", "unlock --shell", "passwd",
]  # fmt: skip
PTY_QUICK = [
    "list",
    "describe {key}",
    "encrypt -k {key} {file}",
    "unlock --shell",
    "passwd",
    "seal -k {key} --out {file}.sealed {file}",
]


def _pty_ci(keyring_home: Path, tmp_path: Path, command: str) -> tuple[int, float, bytes]:
    data = tmp_path / "data"
    data.write_bytes(b"eA==")  # a plaintext, and a blob (in base64) that gets as far as the unlock
    key = "1234abcd-12ab-34cd-56ef-1234567890ab"
    args = command.format(key=key, file=data, sealed=tmp_path / "sealed").split()
    term = Pty(args, clean_env(keyring_home, CI="true"))
    code, elapsed = term.wait(timeout=10)
    return code, elapsed, term.out


def _startup_s() -> float:
    """What the machine needs right now to start kmsctl at all (--version)."""
    start = time.monotonic()
    subprocess.run([str(EXE), "--version"], capture_output=True, timeout=30, check=True)
    return time.monotonic() - start


def _assert_fails_fast(keyring_home: Path, tmp_path: Path, command: str) -> None:
    """Exit 5 within BUDGET_S on a quiet machine; a shared, loaded one (eight
    test runs on two cores) gets the budget scaled by how slow start-up is now.
    A hang is over any budget (and killed at 10 s)."""
    for _ in range(3):  # the best of three
        code, elapsed, out = _pty_ci(keyring_home, tmp_path, command)
        budget = max(BUDGET_S, 4 * _startup_s())
        if code != 5 or elapsed < budget:
            break
    assert code == 5, (command, out)
    assert elapsed < budget, (command, elapsed, budget)
    assert b"prompting is off (CI=true)" in out, out
    assert b"passphrase:" not in out.lower()


@pytest.mark.parametrize("command", PTY_QUICK)
def test_under_a_pty_ci_fails_at_once(keyring_home: Path, tmp_path: Path, command: str) -> None:
    _assert_fails_fast(keyring_home, tmp_path, command)


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in KEYRING_COMMANDS if c not in PTY_QUICK])
def test_under_a_pty_ci_every_keyring_command_fails_at_once(
    cli: Any, keyring_home: Path, tmp_path: Path, command: str
) -> None:
    made = cli("-o", "text", "create")
    (tmp_path / "sealed").write_bytes(cli("seal", "-k", made.stdout.strip(), input=b"x").stdout_bytes)
    _assert_fails_fast(keyring_home, tmp_path, command)


def test_under_a_pty_ci_init_fails_at_once(tmp_path: Path) -> None:
    term = Pty(["init"], clean_env(tmp_path / "fresh", CI="true"))
    code, elapsed = term.wait()
    assert (code, elapsed < 2 * BUDGET_S) == (5, True), term.out
    assert b"prompting is off (CI=true)" in term.out and b"--no-passphrase" in term.out
    assert not (tmp_path / "fresh" / "keyring.db").exists()


def test_under_a_pty_without_ci_the_prompt_is_asked(keyring_home: Path) -> None:
    """The control for the tests above: the same PTY without CI does prompt."""
    term = Pty(["list"], clean_env(keyring_home))
    term.read_until(b"Keyring passphrase: ")
    term.send(PASSPHRASE.encode() + b"\n")
    assert term.wait()[0] == 0, term.out


def test_no_input_refuses_to_read_input_from_the_terminal(keyring_home: Path) -> None:
    term = Pty(["encrypt", "-k", "alias/app"], clean_env(keyring_home, CI="true"))
    code, elapsed = term.wait()
    assert code == 2 and elapsed < 2 * BUDGET_S, term.out
    assert b"UsageError: the plaintext would be read from the terminal, and prompting is off" in term.out


# ----- unlock --shell under set -e -----

SCRIPT = 'set -euo pipefail\neval "$("$K" unlock --shell {args})"\necho "still running"\n'


@pytest.mark.parametrize(
    ("args", "env", "error"),
    [
        ("", {"KMSCTL_PASSPHRASE": "wrong passphrase"}, "AccessDeniedException"),
        ("--ttl 0", {}, "UsageError"),
        ("--nonsense", {}, "UsageError"),
        ("", {"KMSCTL_HOME": "/nonexistent/kmsctl"}, "NotFoundException"),
    ],
    ids=["wrong-passphrase", "bad-ttl", "unknown-option", "no-keyring"],
)
def test_a_failed_unlock_stops_a_set_e_script(
    keyring_home: Path, passfile: Path, args: str, env: dict[str, str], error: str
) -> None:
    full = clean_env(keyring_home, K=str(EXE), **env)
    if not env:
        full["KMSCTL_PASSPHRASE_FILE"] = str(passfile)
    proc = subprocess.run(
        ["bash", "-c", SCRIPT.format(args=args)], env=full, capture_output=True, timeout=30, check=False
    )
    assert proc.returncode != 0
    assert b"still running" not in proc.stdout
    one_error(proc.stderr, error)


def test_unlock_shell_prints_false_and_only_false_on_failure(cli: Any) -> None:
    r = cli("unlock", "--shell", env={"KMSCTL_PASSPHRASE_FILE": None, "KMSCTL_PASSPHRASE": "wrong"})
    assert (r.exit_code, r.stdout) == (5, "false\n")
    ok = cli("unlock", "--shell")
    assert ok.exit_code == 0 and ok.stdout.startswith("export KMSCTL_SESSION=")
    plain = cli("unlock", env={"KMSCTL_PASSPHRASE_FILE": None, "KMSCTL_PASSPHRASE": "wrong"})
    assert (plain.exit_code, plain.stdout) == (5, "")  # without --shell nothing is evaluated
    assert cli("unlock", "--shell", "--help").stdout.startswith("Usage: kmsctl unlock")


def test_a_good_unlock_lets_the_script_go_on(keyring_home: Path, passfile: Path) -> None:
    full = clean_env(keyring_home, K=str(EXE), KMSCTL_PASSPHRASE_FILE=str(passfile))
    script = SCRIPT.format(args="") + 'unset KMSCTL_PASSPHRASE_FILE; "$K" -o text list\n'
    proc = subprocess.run(["bash", "-c", script], env=full, capture_output=True, timeout=30, check=False)
    assert (proc.returncode, proc.stdout) == (0, b"still running\n"), proc.stderr


# ----- at the prompt -----


def _errors(cli: Any) -> list[dict[str, Any]]:
    r = cli("-o", "json", "audit", "list", "--errors")
    assert r.exit_code == 0, r.stderr
    return [e for e in json.loads(r.stdout)["Events"] if e.get("errorCode") == "AccessDeniedException"]


def test_a_mistyped_passphrase_is_asked_again(keyring_home: Path, cli: Any) -> None:
    term = Pty(["-o", "text", "list"], clean_env(keyring_home))
    term.read_until(b"Keyring passphrase: ")
    term.send(b"typo\n")
    term.read_until(b"wrong passphrase; try again")
    term.read_until(b"Keyring passphrase: ")  # typed before it, the answer would be flushed
    term.send(PASSPHRASE.encode() + b"\n")
    assert term.wait()[0] == 0, term.out
    errors = _errors(cli)
    assert len(errors) == 1 and errors[0]["eventName"] == "Unlock"  # the failed try is audited


def test_three_wrong_tries_and_out(keyring_home: Path, cli: Any) -> None:
    term = Pty(["unlock", "--shell"], clean_env(keyring_home))
    for _ in range(3):
        term.read_until(b"Keyring passphrase: ")
        term.send(b"typo\n")
    code, _ = term.wait()
    assert code == 5
    assert re.search(rb"wrong passphrase \(3 tries\) \(hint: it was typed at the prompt", term.out), term.out
    assert b"false" in term.out
    assert len(_errors(cli)) == 3  # each try is recorded, as one wrong passphrase is


def test_no_retry_for_a_passphrase_that_is_not_typed(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unlock_mod, "terminal_prompt", _never_prompt)
    r = cli("list", env={"KMSCTL_PASSPHRASE_FILE": None, "KMSCTL_PASSPHRASE": "wrong"})
    assert r.exit_code == 5
    assert len(_errors(cli)) == 1


def test_ctrl_c_at_the_prompt_ends_the_line_first(keyring_home: Path) -> None:
    term = Pty(["list"], clean_env(keyring_home))
    term.read_until(b"Keyring passphrase: ")
    term.send(b"\x03")
    code, _ = term.wait()
    assert code == 130
    assert re.search(rb"Keyring passphrase: \r?\n+kmsctl: Interrupted: interrupted\r?\n$", term.out), term.out


def test_init_asks_again_when_the_entries_differ(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    term = Pty(["init"], clean_env(home))
    term.read_until(b"New passphrase: ")
    term.send(b"first passphrase\n")
    term.read_until(b"Repeat passphrase: ")
    term.send(b"second passphrase\n")
    term.read_until(b"differ; try again")
    term.read_until(b"New passphrase: ")
    term.send(b"the same passphrase\n")
    term.read_until(b"Repeat passphrase: ")
    term.send(b"the same passphrase\n")
    assert term.wait()[0] == 0, term.out
    env = clean_env(home, KMSCTL_PASSPHRASE="the same passphrase")
    check = subprocess.run([str(EXE), "list"], env=env, capture_output=True, timeout=30, check=False)
    assert check.returncode == 0, check.stderr


def _prompts(answers: list[str]) -> Callable[[str], str]:
    it = iter(answers)
    return lambda _text: next(it)


def test_init_gives_up_after_three_different_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kmsctl.cli import run

    monkeypatch.setattr(unlock_mod, "terminal_prompt", _prompts(["a long one", "a long two"] * 3))
    monkeypatch.setenv("KMSCTL_HOME", str(tmp_path / "fresh"))
    assert run(["init"]) == 2
    assert not (tmp_path / "fresh" / "keyring.db").exists()


def test_init_on_an_existing_keyring_says_so_before_asking(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unlock_mod, "terminal_prompt", _never_prompt)
    r = cli("init", env={"KMSCTL_PASSPHRASE_FILE": None})
    assert r.exit_code == 7
    assert "a keyring already exists at" in one_error(r.stderr, "AlreadyExistsException")


@pytest.mark.parametrize(("passphrase", "warned"), [("short", True), ("1234567", True), ("12345678", False)])
def test_a_short_new_passphrase_is_warned_about(tmp_path: Path, passphrase: str, warned: bool) -> None:
    env = clean_env(tmp_path / "fresh", KMSCTL_PASSPHRASE=passphrase)
    r = subprocess.run([str(EXE), "-q", "init"], env=env, capture_output=True, timeout=30, check=False)
    assert r.returncode == 0
    assert (b"shorter than 8 characters" in r.stderr) == warned, r.stderr


def test_passwd_warns_about_a_short_new_passphrase(cli: Any, tmp_path: Path) -> None:
    new = tmp_path / "new"
    new.write_text("abc\n")
    r = cli("passwd", "--new-passphrase-file", str(new))
    assert r.exit_code == 0, r.stderr
    assert "WARNING: the passphrase is shorter than 8 characters" in r.stderr


@pytest.mark.parametrize(("mode", "warned"), [(0o600, False), (0o400, False), (0o640, True), (0o644, True)])
def test_a_passphrase_file_others_can_read_is_warned_about(cli: Any, passfile: Path, mode: int, warned: bool) -> None:
    passfile.chmod(mode)
    r = cli("-q", "-o", "text", "describe", "alias/none")  # -q does not silence it
    warnings = [line for line in r.stderr.splitlines() if "readable by others" in line]
    assert len(warnings) == (1 if warned else 0), r.stderr
    if warned:
        assert f"(mode {mode:04o}); chmod 600 {passfile}" in warnings[0]


@pytest.mark.parametrize(("suffix", "code"), [("", 0), ("\n", 0), ("\r\n", 0), ("\n\n", 5), (" ", 5)])
def test_kmsctl_passphrase_loses_one_line_ending_as_a_file_does(cli: Any, suffix: str, code: int) -> None:
    r = cli("list", env={"KMSCTL_PASSPHRASE_FILE": None, "KMSCTL_PASSPHRASE": PASSPHRASE + suffix})
    assert r.exit_code == code, r.stderr


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        (["--passphrase-file", "{bad}"], {}, "it came from --passphrase-file {bad}"),
        ([], {"KMSCTL_PASSPHRASE_FILE": "{bad}"}, "it came from KMSCTL_PASSPHRASE_FILE={bad}"),
        ([], {"KMSCTL_PASSPHRASE": "wrong"}, "it came from KMSCTL_PASSPHRASE;"),
    ],
)
def test_the_wrong_passphrase_hint_names_its_source(
    cli: Any, tmp_path: Path, args: list[str], env: dict[str, str], source: str
) -> None:
    bad = tmp_path / "bad"
    bad.write_text("not it\n")
    full: dict[str, str | None] = {"KMSCTL_PASSPHRASE_FILE": None}
    full.update({k: v.format(bad=bad) for k, v in env.items()})
    r = cli(*[a.format(bad=bad) for a in args], "list", env=full)
    assert r.exit_code == 5
    line = one_error(r.stderr, "AccessDeniedException")
    assert line.startswith("kmsctl: AccessDeniedException: wrong passphrase (hint: ")
    assert source.format(bad=bad) in hint_of(line)


# ----- hints that fix -----


@pytest.fixture
def app_key(cli: Any) -> str:
    r = cli("-o", "text", "create", "--alias", "alias/app")
    assert r.exit_code == 0, r.stderr
    return r.stdout.strip()


def test_encrypting_more_than_4096_bytes_points_to_seal(cli: Any, app_key: str) -> None:
    assert cli("encrypt", "-k", "alias/app", input=b"x" * 4096).exit_code == 0
    r = cli("encrypt", "-k", "alias/app", input=b"x" * 4097)
    assert r.exit_code == 2
    assert "kmsctl seal -k KEY FILE" in hint_of(one_error(r.stderr, "ValidationException"))


def test_signing_more_than_4096_bytes_points_to_a_digest(
    sub: Any, cli: Any, tmp_path: Path, keyring_home: Path, passfile: Path
) -> None:
    made = cli("create", "--key-spec", "ECC_NIST_P384", "--key-usage", "SIGN_VERIFY", "--alias", "alias/rel")
    assert made.exit_code == 0, made.stderr
    big = tmp_path / "big"
    big.write_bytes(b"y" * 5000)
    r = sub("sign", "-k", "alias/rel", str(big))
    assert r.returncode == 2
    hint = hint_of(one_error(r.stderr, "ValidationException"))
    line = "openssl dgst -sha384 -binary FILE | kmsctl sign -k alias/rel --message-type DIGEST"
    assert line in hint
    # the line works as written, and its signature verifies over the file's digest
    script = "set -o pipefail; " + line.replace("FILE", str(big)).replace("kmsctl", str(EXE)) + f" > {tmp_path}/sig"
    env = clean_env(keyring_home, KMSCTL_PASSPHRASE_FILE=str(passfile))
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    digest = hashlib.sha384(big.read_bytes()).digest()
    v = sub("verify", "-k", "alias/rel", "--signature", f"{tmp_path}/sig", "--message-type", "DIGEST", input=digest)
    assert v.returncode == 0, v.stderr
    raw = sub("verify", "-k", "alias/rel", "--signature", f"{tmp_path}/sig", str(big))
    assert "--signature SIG --message-type DIGEST" in hint_of(one_error(raw.stderr, "ValidationException"))


def test_decrypting_a_sealed_file_points_to_unseal(cli: Any, app_key: str) -> None:
    sealed = cli("seal", "-k", "alias/app", input=b"secret").stdout_bytes
    r = cli("decrypt", input=sealed)
    assert r.exit_code == 6
    assert "kmsctl unseal" in hint_of(one_error(r.stderr, "InvalidCiphertextException"))
    other = cli("decrypt", input=b"\xa9not a blob")
    assert "unseal" not in other.stderr


@pytest.mark.parametrize("command", [["describe", "app"], ["enable", "app"], ["encrypt", "-k", "app"]])
def test_a_bare_alias_word_gets_did_you_mean(cli: Any, app_key: str, command: list[str]) -> None:
    r = cli(*command, input=b"x")
    assert r.exit_code == 3
    line = one_error(r.stderr, "NotFoundException")
    assert line.startswith("kmsctl: NotFoundException: Invalid keyId app (hint: ")
    assert hint_of(line) == "did you mean alias/app?"
    assert "arn:" not in line  # the key as typed, not an invented ARN


def test_a_bare_word_that_is_no_alias_gets_no_guess(cli: Any, app_key: str) -> None:
    r = cli("describe", "nothing")
    assert r.exit_code == 3
    assert one_error(r.stderr, "NotFoundException") == "kmsctl: NotFoundException: Invalid keyId nothing\n"


@pytest.mark.parametrize(
    ("args", "suggestion", "where"),
    [
        (["lsit"], "list", "kmsctl"),
        (["decrpyt"], "decrypt", "kmsctl"),
        (["describe-kye"], "describe-key", "kmsctl"),
        (["alias", "lsit"], "list", "kmsctl alias"),
        (["rotation", "stauts", "k"], "status", "kmsctl rotation"),
    ],
)
def test_a_mistyped_command_gets_a_suggestion(cli: Any, args: list[str], suggestion: str, where: str) -> None:
    r = cli(*args)
    assert r.exit_code == 2
    line = one_error(r.stderr, "UsageError")
    assert f"No such command '{args[-1] if len(args) < 3 else args[1]}'. Did you mean {suggestion}?" in line
    assert f"(see '{where} --help')" in line


def test_a_command_nothing_like_any_gets_no_guess(cli: Any) -> None:
    line = one_error(cli("zzzzqqq").stderr, "UsageError")
    assert "No such command 'zzzzqqq'." in line and "Did you mean" not in line


# ----- aws kms command names -----


@pytest.mark.parametrize(("aws", "words"), sorted(AWS_COMMANDS.items()))
def test_every_aws_command_name_resolves(cli: Any, aws: str, words: str) -> None:
    path = [w for w in words.split() if not w.startswith("-")]
    r = cli(aws, "--help")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"Usage: kmsctl {' '.join(path)} ")
    assert path[0] in COMMANDS


def test_aws_names_cover_every_aws_command_kmsctl_has() -> None:
    """Each AWS operation a kmsctl command names in its help (CreateKey, ...)
    is reachable by its aws kms name: the kebab-case form of the operation."""
    ctx = click.Context(cli)
    operations: dict[str, str] = {}
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        subs = command.commands.items() if isinstance(command, click.Group) else [("", command)]
        for sub_name, sub in subs:
            for op in re.findall(r"\(([A-Z][A-Za-z]+)\)", sub.help or ""):
                operations[op] = f"{name} {sub_name}".strip()
    kebab = {re.sub(r"(?<!^)(?=[A-Z])", "-", op).lower(): words for op, words in operations.items()}
    for aws, words in kebab.items():
        if words.split()[0] == "principal":  # IAM's shapes, kmsctl's own: no aws kms command
            continue
        if aws != words:
            assert aws in AWS_COMMANDS, (aws, words)
            assert AWS_COMMANDS[aws].split()[: len(words.split())] == words.split()
    for aws in ("encrypt", "decrypt", "re-encrypt", "sign", "verify", "verify-mac", "derive-shared-secret"):
        assert aws in COMMANDS  # the same name in both


def test_aws_names_work_like_their_commands(cli: Any, app_key: str) -> None:
    described = json.loads(cli("-o", "json", "describe-key", "alias/app").stdout)
    assert described["KeyMetadata"]["KeyId"] == app_key
    listed = cli("-o", "text", "list-keys")
    assert listed.stdout.split("\t")[0] == app_key
    dk = json.loads(cli("-o", "json", "generate-data-key-without-plaintext", "-k", "alias/app").stdout)
    assert "CiphertextBlob" in dk and "Plaintext" not in dk
    assert cli("enable-key-rotation", "alias/app").exit_code == 0
    status = json.loads(cli("-o", "json", "get-key-rotation-status", "alias/app").stdout)
    assert status["KeyRotationEnabled"] is True
    assert len(cli("generate-random", "--bytes", "7").stdout_bytes) == 7


def test_aws_names_are_hidden_from_help_but_completed(sub: Any) -> None:
    from test_completion import complete

    top = sub("--help").stdout.decode()
    assert not any(re.search(rf"^\s+{re.escape(aws)}\b", top, re.M) for aws in AWS_COMMANDS)
    assert complete(sub, "kmsctl desc")[0] == ["describe"]  # one TAB still completes the kmsctl name
    assert complete(sub, "kmsctl describe-")[0] == ["describe-custom-key-stores", "describe-key"]
    assert complete(sub, "kmsctl gen")[0] == sorted(a for a in AWS_COMMANDS if a.startswith("gen"))
    assert complete(sub, "kmsctl list-")[0] == sorted(a for a in AWS_COMMANDS if a.startswith("list-"))
    assert {"list-aliases", "list-grants", "list-keys"} <= set(complete(sub, "kmsctl list-")[0])
    assert "--period-days" in complete(sub, "kmsctl enable-key-rotation --")[0]


# ----- global options after the command -----


def test_home_after_the_command_opens_that_keyring(cli: Any, app_key: str, tmp_path: Path, keyring_home: Path) -> None:
    elsewhere = {"KMSCTL_HOME": str(tmp_path / "elsewhere")}
    assert cli("-o", "text", "list", env=elsewhere).exit_code == 3  # no keyring there
    r = cli("-o", "text", "list", "--home", str(keyring_home), env=elsewhere)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split("\t")[0] == app_key


def test_other_global_options_after_the_command(cli: Any, app_key: str, passfile: Path) -> None:
    r = cli("describe", "alias/app", "--passphrase-file", str(passfile), env={"KMSCTL_PASSPHRASE_FILE": None})
    assert r.exit_code == 0, r.stderr
    assert cli("describe", "alias/app", "--no-color", "--debug").exit_code == 0
    r = cli("list", "--no-input", env={"KMSCTL_PASSPHRASE_FILE": None})
    assert (r.exit_code, "prompting is off (--no-input)" in r.stderr) == (5, True)
    # a command's own option of the same name keeps its meaning
    assert "Read the passphrase from this file." in cli("unlock", "--help").stdout
    assert "--home" not in cli("list", "--help").stdout  # hidden: the root's --help describes them


def test_random_takes_n_as_a_word_too(cli: Any) -> None:
    assert len(cli("random", "16").stdout_bytes) == 16
    assert len(cli("random", "--bytes", "16").stdout_bytes) == 16
    assert len(cli("random").stdout_bytes) == 32
    assert cli("random", "16", "--bytes", "8").exit_code == 2
    assert cli("random", "0").exit_code == 2


@pytest.mark.parametrize("args", [["-o", "JSON"], ["-o", "Json"]])
def test_output_choice_in_any_case(cli: Any, args: list[str]) -> None:
    assert "Plaintext" in json.loads(cli(*args, "random", "4").stdout)
    assert "Plaintext" in json.loads(cli("random", "4", *args).stdout)
    assert "Plaintext" in json.loads(cli("random", "4", env={"KMSCTL_OUTPUT": args[1]}).stdout)


# ----- bare kmsctl -----


def test_bare_kmsctl_prints_a_grouped_overview() -> None:
    r = subprocess.run([str(EXE)], capture_output=True, timeout=30, check=False, env=clean_env(Path("/nonexistent")))
    assert (r.returncode, r.stderr) == (0, b"")
    text = r.stdout.decode()
    titles = [line.split()[0] for line in text.splitlines() if line and not line.startswith((" ", "'", "kmsctl"))]
    assert titles == ["Keyring", "Keys", "Crypto", "Files", "In", "Access", "Audit", "Shell"]  # In and out
    words = set(text.split())
    assert all(name in words for name in COMMANDS)
    assert not words & set(AWS_COMMANDS)
    assert len(text.splitlines()) < 25 and max(map(len, text.splitlines())) <= 80


def test_passwd_under_no_input_needs_the_new_passphrase_in_a_file(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unlock_mod, "terminal_prompt", _never_prompt)
    r = cli("--no-input", "passwd")
    assert r.exit_code == 5
    line = one_error(r.stderr, "AccessDeniedException")
    assert "a new passphrase is needed and prompting is off (--no-input)" in line
    assert "--new-passphrase-file" in hint_of(line)
    assert cli("list").exit_code == 0  # the passphrase is unchanged

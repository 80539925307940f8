"""Tables for people: nothing a person copies (key IDs, ARNs, states, specs,
alias names, material IDs, event names) is ever split across lines, at any
width; columns are dropped or rows folded into records instead. Checked in a
real terminal (tmux at 80 and 120 columns) and in-process with rich
consoles of many widths."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kmsctl.render.table import layout, render_records, render_table
from kmsctl.service import LocalKMS

EXE = Path(sys.executable).with_name("kmsctl")
LONG_ALIAS = "alias/release-signing-key-for-the-web-application"


@pytest.fixture
def world(kms: LocalKMS) -> dict[str, Any]:
    """Keys in every state and of the longest specs, with aliases, tags and rotations."""

    def create(**args: Any) -> str:
        return str(kms.create_key(**args)["KeyMetadata"]["KeyId"])

    app = create(Description="web app secrets " * 8, Tags=[{"TagKey": "team", "TagValue": "web"}])
    kms.create_alias(AliasName="alias/app", TargetKeyId=app)
    kms.create_alias(AliasName="alias/app-previous-name", TargetKeyId=app)
    kms.enable_key_rotation(KeyId=app, RotationPeriodInDays=90)
    kms.rotate_key_on_demand(KeyId=app)
    disabled = create()
    kms.disable_key(KeyId=disabled)
    doomed = create()
    kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    edwards = create(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
    kms.create_alias(AliasName=LONG_ALIAS, TargetKeyId=edwards)
    rsa = create(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    hmac = create(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    kms.encrypt(KeyId=app, Plaintext=b"x")
    materials = [
        r["KeyMaterialId"]
        for r in kms.list_key_rotations(KeyId=app, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    ]
    keys = {"app": app, "disabled": disabled, "doomed": doomed, "edwards": edwards, "rsa": rsa, "hmac": hmac}
    return {"keys": keys, "materials": materials, "arns": {k: kms.key_arn(v) for k, v in keys.items()}}


STATES = ["Enabled", "Disabled", "PendingDeletion"]
SPECS = ["SYMMETRIC_DEFAULT", "ECC_NIST_EDWARDS25519", "RSA_2048", "HMAC_256"]
USAGES = ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"]
ALIASES = ["alias/app", "alias/app-previous-name", LONG_ALIAS]


def commands(world: dict[str, Any]) -> list[tuple[list[str], list[str]]]:
    """(kmsctl arguments, the words that must each appear whole on one line)."""
    k = world["keys"]
    ids = list(k.values())
    return [
        (["list"], [*ids, *STATES, *SPECS, *USAGES, *ALIASES]),
        (
            ["describe", "alias/app"],
            [k["app"], world["arns"]["app"], "alias/app", "alias/app-previous-name", "team=web", "SYMMETRIC_DEFAULT"],
        ),
        (
            ["describe", k["edwards"]],
            [
                k["edwards"],
                world["arns"]["edwards"],
                LONG_ALIAS,
                "ECC_NIST_EDWARDS25519",
                "ED25519_SHA_512",
                "ED25519_PH_SHA_512",
            ],
        ),
        (["describe", k["rsa"]], [k["rsa"], "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "ENCRYPT_DECRYPT"]),
        (["describe", k["doomed"]], [k["doomed"], "PendingDeletion"]),
        (["alias", "list"], [*ALIASES, k["app"], k["edwards"]]),
        (["tag", "list", "alias/app"], ["team", "web"]),
        (
            ["rotation", "list", "alias/app", "--all-material"],
            [*world["materials"], "CURRENT", "NON_CURRENT", "ON_DEMAND"],
        ),
        (
            ["audit", "list"],
            [k["app"], k["edwards"], "CreateKey", "ScheduleKeyDeletion", "RotateKeyOnDemand", "EnableKeyRotation"],
        ),
    ]


def unsplit(screen: str, words: list[str], width: int) -> None:
    lines = screen.splitlines()
    # a line is longer than the terminal only to hold one word longer than the terminal
    assert all(len(line.rstrip()) <= width or " " not in line.strip() for line in lines), screen
    for word in words:
        assert any(word in line for line in lines), f"{word!r} is split or missing at {width} columns:\n{screen}"


# ----- a real terminal -----


@pytest.mark.parametrize("width", [80, 120])
def test_nothing_is_split_in_a_real_terminal(
    tmp_path: Path, keyring_home: Path, passfile: Path, world: dict[str, Any], width: int
) -> None:
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed")
    kmsctl = shlex.quote(str(EXE)) if EXE.exists() else f"{shlex.quote(sys.executable)} -m kmsctl"
    cases = commands(world)
    script = tmp_path / "run.sh"
    lines = ["clear"]
    for n, (args, _) in enumerate(cases):
        lines.append(f"echo '<<{n}>>'; {kmsctl} {shlex.join(args)}; echo '<</{n}>>'")
    lines.append("echo '<<done>>'")
    script.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k not in ("NO_COLOR", "COLUMNS")}
    env.update(KMSCTL_HOME=str(keyring_home), KMSCTL_PASSPHRASE_FILE=str(passfile), TERM="xterm-256color")
    socket, name = str(tmp_path / "tmux.sock"), f"kmsctl-{uuid.uuid4().hex[:8]}"
    base = [tmux, "-S", socket]
    subprocess.run(
        [
            *base,
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            str(width),
            "-y",
            "50",
            f"bash --noprofile --norc {script}; sleep 60",
        ],
        env=env,
        check=True,
    )
    try:
        subprocess.run([*base, "set-option", "-t", name, "history-limit", "20000"], check=True)
        deadline = time.monotonic() + 60
        while True:
            screen = subprocess.run(
                [*base, "capture-pane", "-p", "-S", "-", "-t", name], capture_output=True, text=True, check=True
            ).stdout
            if "<<done>>" in screen or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "<<done>>" in screen, screen
        assert "kmsctl:" not in screen and "Traceback" not in screen, screen
        for n, (_args, words) in enumerate(cases):
            part = screen.split(f"<<{n}>>\n", 1)[1].split(f"<</{n}>>", 1)[0]
            unsplit(part, words, width)
    finally:
        subprocess.run([*base, "kill-server"], check=False, capture_output=True)


# ----- in-process, every width -----


@pytest.mark.parametrize("width", [60, 72, 80, 100, 120, 160, 200])
def test_nothing_is_split_at_any_width(cli: Any, world: dict[str, Any], width: int) -> None:
    for args, words in commands(world):
        out = cli("-o", "table", *args, env={"COLUMNS": str(width)})
        assert out.exit_code == 0, out.stderr
        unsplit(out.stdout, words, width)


def test_wide_terminal_shows_a_table_with_key_usage(cli: Any, world: dict[str, Any]) -> None:
    out = cli("-o", "table", "list", env={"COLUMNS": "160"}).stdout
    header = out.splitlines()[0].split()
    assert header[:5] == ["KeyId", "KeyState", "KeySpec", "KeyUsage", "Aliases"]
    row = next(line for line in out.splitlines() if world["keys"]["edwards"] in line)
    assert "SIGN_VERIFY" in row and "ECC_NIST_EDWARDS25519" in row and LONG_ALIAS in row


def test_a_narrow_terminal_drops_the_description_then_folds_rows_into_records(cli: Any, world: dict[str, Any]) -> None:
    wide = cli("-o", "table", "list", env={"COLUMNS": "240"}).stdout
    assert "Description" in wide.splitlines()[0] and "web app secrets" in wide
    narrow = cli("-o", "table", "list", env={"COLUMNS": "155"}).stdout
    assert "Description" not in narrow and narrow.splitlines()[0].split()[0] == "KeyId"
    folded = cli("-o", "table", "list", env={"COLUMNS": "80"}).stdout
    blocks = folded.strip().split("\n\n")
    assert len(blocks) == len(world["keys"])
    assert all(block.startswith("KeyId ") for block in blocks)
    assert "KeyUsage     ENCRYPT_DECRYPT" in folded


def test_text_and_json_do_not_change_with_the_width(cli: Any, world: dict[str, Any]) -> None:
    for mode in ("text", "json"):
        for args, _ in commands(world):
            outs = {cli("-o", mode, *args, env={"COLUMNS": w}).stdout for w in ("60", "200")}
            assert len(outs) == 1, args
    text = cli("-o", "text", "describe", "alias/app").stdout.rstrip("\n").split("\t")
    assert len(text) == 8 and text[0] == world["keys"]["app"]  # the documented columns, nothing added


def test_describe_shows_aliases_tags_algorithms_and_rotation(cli: Any, world: dict[str, Any], clock: Any) -> None:
    out = cli("-o", "table", "describe", "alias/app", env={"COLUMNS": "120"}).stdout
    fields = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines() if "  " in line.strip())
    assert fields["Aliases"] == "alias/app, alias/app-previous-name"
    assert fields["Tags"] == "team=web"
    assert fields["EncryptionAlgorithms"] == "SYMMETRIC_DEFAULT"
    assert fields["KeyRotationEnabled"] == "true" and fields["RotationPeriodInDays"] == "90"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", fields["NextRotationDate"])
    doomed = cli("-o", "table", "describe", world["keys"]["doomed"], env={"COLUMNS": "120"}).stdout
    assert re.search(r"DeletionDate\s+\d{4}-\d\d-\d\d \d\d:\d\d\n", doomed)
    signing = cli("-o", "table", "describe", world["keys"]["edwards"], env={"COLUMNS": "120"}).stdout
    assert re.search(r"SigningAlgorithms\s+ED25519_SHA_512, ED25519_PH_SHA_512", signing)


def test_create_echoes_its_alias_and_tags(cli: Any) -> None:
    out = cli("-o", "table", "create", "--alias", "alias/new", "--tag", "team=ops", "--tag", "env=prod").stdout
    assert re.search(r"Aliases\s+alias/new\n", out) and re.search(r"Tags\s+team=ops, env=prod\n", out)
    assert cli("-o", "text", "create", "--alias", "alias/new2").stdout.count("\n") == 1  # the key ID only


def test_one_time_format_on_every_table(cli: Any, world: dict[str, Any]) -> None:
    stamp = datetime.fromtimestamp(1_800_000_000, UTC).strftime("%Y-%m-%d %H:%M")  # the fixture clock
    for args in (["audit", "list"], ["alias", "list"], ["describe", "alias/app"], ["rotation", "list", "alias/app"]):
        out = cli("-o", "table", *args, env={"COLUMNS": "200"}).stdout
        assert stamp in out, args
        assert not re.search(r"\d\d:\d\d:\d\d|T\d\d:", out), (args, out)


def test_key_states_are_coloured_unless_colour_is_off(world: dict[str, Any]) -> None:
    rows = [
        [world["keys"]["app"], "Enabled"],
        [world["keys"]["disabled"], "Disabled"],
        ["x", "PendingDeletion"],
        ["y", "PendingImport"],
    ]

    def draw(color: bool) -> str:
        buf = io.StringIO()
        console = Console(file=buf, width=120, force_terminal=True, color_system="standard")
        render_table(console, ["KeyId", "KeyState"], rows, color=color)
        return buf.getvalue()

    coloured = draw(True)
    for state, code in (("Enabled", "32"), ("Disabled", "33"), ("PendingDeletion", "31"), ("PendingImport", "2")):
        assert f"\x1b[{code}m{state}" in coloured, state
    assert "\x1b[" not in draw(False)


def test_no_color_turns_the_colour_off_through_the_cli(cli: Any, world: dict[str, Any]) -> None:
    # rich would colour this (FORCE_COLOR); kmsctl's colour settings win
    for env in ({"NO_COLOR": "1"}, {}):
        out = cli("-o", "table", *(["--no-color"] if not env else []), "list", env={"FORCE_COLOR": "1", **env})
        assert out.exit_code == 0 and "\x1b[" not in out.stdout, env
    out = cli("-o", "table", "list", env={"FORCE_COLOR": "1", "COLUMNS": "160"})
    assert "\x1b[" in out.stdout


def test_layout_is_none_only_when_the_essential_columns_cannot_fit() -> None:
    row = ["0afe2cce-b4e1-474d-ae0c-f36ef7424119", "Enabled", "a description that is long enough"]
    assert layout(["KeyId", "KeyState", "Description"], [row], 200) == [
        ("KeyId", 36),
        ("KeyState", 8),
        ("Description", 33),
    ]
    assert layout(["KeyId", "KeyState", "Description"], [row], 60) == [
        ("KeyId", 36),
        ("KeyState", 8),
        ("Description", 12),
    ]
    assert layout(["KeyId", "KeyState", "Description"], [row], 50) == [("KeyId", 36), ("KeyState", 8)]
    assert layout(["KeyId", "KeyState", "Description"], [row], 45) is None


def test_records_keep_long_values_whole() -> None:
    buf = io.StringIO()
    arn = "arn:aws:kms:us-east-1:111122223333:key/0afe2cce-b4e1-474d-ae0c-f36ef7424119"
    algorithms = ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256"]
    render_records(Console(file=buf, width=80), [[("Arn", arn), ("SigningAlgorithms", algorithms)]], color=False)
    out = buf.getvalue()
    assert f"\n  {arn}\n" in out
    assert all(any(a in line for line in out.splitlines()) for a in algorithms)
    assert all(len(line) <= 80 for line in out.splitlines())


# ----- the spinner -----


def _stderr_on_a_terminal(home: Path, passfile: Path, *args: str) -> tuple[bytes, bytes]:
    """Run kmsctl with stderr on a pseudo-terminal: (stdout, what the terminal got)."""
    import pty

    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k != "NO_COLOR"}
    env.update(KMSCTL_HOME=str(home), KMSCTL_PASSPHRASE_FILE=str(passfile), TERM="xterm")
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "kmsctl"]
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [*cmd, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env, timeout=60
        )
    finally:
        os.close(slave)
    seen = b""
    try:
        while chunk := os.read(master, 4096):
            seen += chunk
    except OSError:  # the terminal's other end is closed: all read
        pass
    finally:
        os.close(master)
    assert proc.returncode == 0, seen
    return proc.stdout, seen


def test_slow_creation_shows_a_spinner_on_a_terminal_and_never_in_a_pipe(
    keyring_home: Path, passfile: Path, sub: Any
) -> None:
    create = ["-o", "text", "create", "--key-spec", "RSA_3072", "--key-usage", "ENCRYPT_DECRYPT"]
    piped = sub(*create)
    assert piped.returncode == 0 and piped.stderr == b""
    stdout, seen = _stderr_on_a_terminal(keyring_home, passfile, *create)
    assert re.fullmatch(rb"[0-9a-f-]{36}\n", stdout)
    assert b"creating a RSA_3072 key" in seen
    _, quiet = _stderr_on_a_terminal(keyring_home, passfile, "-q", *create)
    assert b"creating" not in quiet

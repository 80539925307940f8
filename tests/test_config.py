"""config.toml: reading, writing, checking, and precedence (flag > environment >
config > default) shown on real commands, in-process (``cli``) and as the real
console script (``sub``)."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from kmsctl import config as cfg
from kmsctl.cli.app import App
from kmsctl.cli.keyring_cmds import TTL_DEFAULT
from kmsctl.errors import ValidationException
from kmsctl.keyring import keyring as kr
from kmsctl.keyring.keyring import Keyring

ROOT = Path(__file__).resolve().parent.parent


def assert_error(stderr: str | bytes, name: str) -> str:
    """Exactly one line, ``kmsctl: <Name>: <message>``, and no traceback (as tests/test_cli.py)."""
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    assert text.startswith(f"kmsctl: {name}: "), text
    assert "Traceback" not in text
    return text


def write_config(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text)
    return path


def origins(cli: Any, *args: str, env: dict[str, str | None] | None = None) -> dict[str, tuple[str, str]]:
    r = cli(*args, "config", "list", "--origin", env=env)
    assert r.exit_code == 0, r.stderr
    if r.stdout.startswith("{"):  # output = json, from config.toml
        shown = {True: "true", False: "false", None: ""}
        return {
            s["Key"]: (shown.get(s["Value"], str(s["Value"])), s["Origin"])  # type: ignore[call-overload]
            for s in json.loads(r.stdout)["Settings"]
        }
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    return {name: (value, origin) for name, value, origin in lines}


# ----- the file -----


def test_no_file_means_defaults(tmp_path: Path) -> None:
    assert cfg.load(str(tmp_path)) == {}
    value, origin = cfg.resolve("output", flags={}, env={}, config={})
    assert (value, origin) == ("auto", "default")


def test_load_flattens_tables_and_types_values(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        'output = "json"\ncolor = false\nsession_ttl = "8h"\n[kdf]\niterations = 4\nlanes = 2\n'
        '[seal]\nkey = "alias/backup"\n',
    )
    assert cfg.load(str(tmp_path)) == {
        "output": "json",
        "color": False,
        "session_ttl": "8h",
        "kdf.iterations": 4,
        "kdf.lanes": 2,
        "seal.key": "alias/backup",
    }


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('output = "json"\n[kdf\nlanes = 2\n', 2, "Expected ']'"),
        ('output = "json"\ncolor = \n', 2, "Invalid value"),
        ('\n\noutput = "xml"\n', 3, "output: expected one of auto, table, json, text"),
        ("color = true\n[kdf]\nlanes = 0\n", 3, "kdf.lanes: expected a whole number from 1 to 64"),
        ('color = true\n[kdf]\nlanes = "four"\n', 3, "kdf.lanes"),
        ('session_ttl = "forever"\n', 1, "session_ttl: expected a duration"),
        ('session_ttl = "31d"\n', 1, "at most 30d"),
        ('outptu = "json"\n', 1, "unknown key 'outptu'"),
        ('[seal]\nkey = "alias/x"\nkee = "alias/y"\n', 3, "unknown key 'seal.kee'"),
    ],
)
def test_a_broken_file_is_one_line_naming_file_and_line_exit_2(
    cli: Any, keyring_home: Path, text: str, line: int, words: str
) -> None:
    path = write_config(keyring_home, text)
    with pytest.raises(ValidationException) as info:
        cfg.load(str(keyring_home))
    assert f"{path}, line {line}: " in info.value.message
    assert words in info.value.message
    r = cli("config", "list")
    assert r.exit_code == 2
    message = assert_error(r.stderr, "ValidationException")
    assert f"{path}, line {line}: " in message and words in message
    # and every command that needs a setting says the same, never a traceback or a silent default
    r = cli("list")
    assert r.exit_code == 2
    assert f"{path}, line {line}" in assert_error(r.stderr, "ValidationException")


def test_a_broken_file_stops_a_command_before_it_changes_anything(cli: Any, keyring_home: Path) -> None:
    write_config(keyring_home, 'output = "json"\n[kdf\n')
    r = cli("create", "--alias", "alias/never")
    assert r.exit_code == 2
    assert "config.toml, line 2" in assert_error(r.stderr, "ValidationException")
    (keyring_home / "config.toml").unlink()
    assert cli("-o", "text", "list").stdout == ""  # no key was made
    assert cli("describe", "alias/never").exit_code == 3


def test_a_file_that_is_not_utf8_names_its_line(cli: Any, keyring_home: Path) -> None:
    (keyring_home / "config.toml").write_bytes(b'output = "json"\ncolor = "\xff"\n')
    r = cli("config", "get", "output")
    assert r.exit_code == 2
    assert "config.toml, line 2: not UTF-8" in assert_error(r.stderr, "ValidationException")


def test_set_get_unset_list_round_trip(cli: Any, keyring_home: Path) -> None:
    r = cli("config", "set", "output", "json")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert "output = json" in r.stderr
    assert cli("config", "set", "kdf.lanes", "2").exit_code == 0
    assert cli("config", "set", "seal.key", "alias/backup").exit_code == 0
    assert cli("config", "set", "color", "off").exit_code == 0
    path = keyring_home / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tomllib.loads(path.read_text()) == {
        "output": "json",
        "color": False,
        "kdf": {"lanes": 2},
        "seal": {"key": "alias/backup"},
    }
    assert cli("-o", "text", "config", "get", "kdf.lanes").stdout == "2\n"
    assert cli("-o", "text", "config", "get", "color").stdout == "false\n"
    got = json.loads(cli("config", "get", "seal.key").stdout)  # output = json, from the file
    assert got == {"Key": "seal.key", "Value": "alias/backup", "Origin": "config"}

    assert cli("config", "unset", "seal.key").exit_code == 0
    assert "seal" not in tomllib.loads(path.read_text())
    r = cli("config", "get", "seal.key")
    assert r.exit_code == 3
    assert "seal.key is not set" in assert_error(r.stderr, "NotFoundException")
    r = cli("config", "unset", "seal.key")  # again: no error
    assert r.exit_code == 0 and "was not set" in r.stderr

    listed = json.loads(cli("config", "list").stdout)
    assert listed["File"] == str(path)
    assert [s["Key"] for s in listed["Settings"]] == list(cfg.SETTINGS)
    assert {s["Key"]: s["Value"] for s in listed["Settings"]}["kdf.lanes"] == 2
    assert "Origin" not in listed["Settings"][0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("output", "xml"),
        ("color", "maybe"),
        ("session_ttl", "0"),
        ("session_ttl", "31d"),
        ("kdf.iterations", "0"),
        ("kdf.iterations", "65"),
        ("kdf.lanes", "65"),
        ("kdf.memory_kib", "1023"),
        ("kdf.memory_kib", str((16 << 20) + 1)),
        ("kdf.memory_kib", "lots"),
        ("seal.key", " "),
        ("nosuch", "1"),
    ],
)
def test_set_refuses_bad_values_and_unknown_keys(cli: Any, keyring_home: Path, key: str, value: str) -> None:
    r = cli("config", "set", key, value)
    assert r.exit_code == 2
    assert_error(r.stderr, "ValidationException")
    assert not (keyring_home / "config.toml").exists()


def test_set_checks_memory_against_the_floor(cli: Any, keyring_home: Path) -> None:
    """The floor (1 MiB) is above 8 KiB x the most lanes (64), so it is the bound that counts."""
    assert cli("config", "set", "kdf.lanes", "64").exit_code == 0
    r = cli("config", "set", "kdf.memory_kib", "1023")
    assert r.exit_code == 2
    assert "1024" in assert_error(r.stderr, "ValidationException")
    assert cli("config", "set", "kdf.memory_kib", "1024").exit_code == 0


def test_config_works_before_init(tmp_path: Path, sub: Any) -> None:
    home = tmp_path / "fresh"
    r = sub("config", "set", "output", "json", env={"KMSCTL_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


# ----- precedence, on real commands -----


def test_output_precedence_flag_env_config_default(cli: Any, kms: Any) -> None:
    kms.create_key()
    assert cli("list").stdout.count("\t") > 0  # default auto: text in a pipe
    assert origins(cli)["output"] == ("auto", "default")

    assert cli("config", "set", "output", "json").exit_code == 0
    assert "Keys" in json.loads(cli("list").stdout)  # config
    assert origins(cli)["output"] == ("json", "config")

    env = {"KMSCTL_OUTPUT": "text"}
    assert "\t" in cli("list", env=env).stdout  # environment over config
    assert origins(cli, env=env)["output"] == ("text", "env")

    assert "Keys" in json.loads(cli("-o", "json", "list", env=env).stdout)  # flag over environment
    assert "Keys" in json.loads(cli("list", "-o", "json", env=env).stdout)  # the late flag too
    assert origins(cli, "-o", "text", env={"KMSCTL_OUTPUT": "json"})["output"] == ("text", "flag")


def test_color_precedence(cli: Any, keyring_home: Path) -> None:
    assert origins(cli)["color"] == ("true", "default")
    assert cli("config", "set", "color", "false").exit_code == 0
    assert origins(cli)["color"] == ("false", "config")
    assert cli("config", "set", "color", "true").exit_code == 0
    assert origins(cli, env={"NO_COLOR": "1"})["color"] == ("false", "env")
    assert origins(cli, env={"NO_COLOR": ""})["color"] == ("true", "config")  # empty NO_COLOR is unset
    assert origins(cli, "--no-color", env={"NO_COLOR": "1"})["color"] == ("false", "flag")


@pytest.mark.parametrize(
    ("env", "flags", "config_text", "no_color"),
    [
        ({}, {}, "", False),
        ({}, {}, "color = false\n", True),
        ({"NO_COLOR": "1"}, {}, "color = true\n", True),
        ({}, {"color": False}, "color = true\n", True),
    ],
)
def test_app_no_color_follows_precedence(
    tmp_path: Path, env: dict[str, str], flags: dict[str, Any], config_text: str, no_color: bool
) -> None:
    write_config(tmp_path, config_text)
    app = App(str(tmp_path), output=None, no_color=True if flags else None, env=env, flags=flags)
    assert app.no_color is no_color


def test_session_ttl_from_config_and_flag(cli: Any, keyring_home: Path) -> None:
    def expires_in(*args: str) -> float:
        r = cli("-o", "json", "unlock", *args)
        assert r.exit_code == 0, r.stderr
        expires = json.loads(r.stdout)["Expires"]
        from datetime import datetime

        return datetime.fromisoformat(expires).timestamp() - time.time()

    assert abs(expires_in() - 3600) < 120  # the default, 1h
    assert cli("config", "set", "session_ttl", "8h").exit_code == 0
    assert abs(expires_in() - 8 * 3600) < 120
    assert abs(expires_in("--ttl", "15m") - 900) < 120  # the flag wins
    assert origins(cli)["session_ttl"] == ("8h", "config")


def test_kdf_settings_shape_new_keyrings_only(cli: Any, keyring_home: Path, tmp_path: Path) -> None:
    before = Keyring(str(keyring_home)).header["kdf"]
    assert cli("config", "set", "kdf.lanes", "2").exit_code == 0
    assert cli("config", "set", "kdf.memory_kib", "16384").exit_code == 0
    assert Keyring(str(keyring_home)).header["kdf"] == before  # an existing keyring keeps its cost

    # a new keyring in the same home folder layout: the config file comes first
    home = tmp_path / "new"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text((keyring_home / "config.toml").read_text())
    r = cli("-q", "init", env={"KMSCTL_HOME": str(home)})
    assert r.exit_code == 0, r.stderr
    kdf = Keyring(str(home)).header["kdf"]
    assert (kdf["iterations"], kdf["memory_kib"], kdf["lanes"]) == (kr.DEFAULT_KDF["iterations"], 16384, 2)
    assert cli("-q", "status", env={"KMSCTL_HOME": str(home)}).exit_code == 0  # and it opens


def test_kdf_bounds_are_the_ones_the_keyring_accepts() -> None:
    """A value config accepts makes a keyring kmsctl opens; one it refuses would not."""
    base = {"format": kr.FORMAT, "version": kr.FORMAT_VERSION, "keyring_id": "00", "region": "us-east-1"}
    base |= {"account": "111122223333", "protected": True, "master_key": {"nonce": "", "wrapped": ""}}

    def accepted(**kdf: int) -> bool:
        params = {"iterations": 1, "memory_kib": 8192, "lanes": 1} | kdf
        header = base | {"kdf": {"name": "argon2id", "salt": "", **params}}
        try:
            kr._checked_header(json.dumps(header).encode(), "test")
        except Exception:
            return False
        return True

    for name, (low, high) in cfg.KDF_BOUNDS.items():
        extra = {"lanes": 1, "memory_kib": 8192} if name != "memory_kib" else {"lanes": 1}
        for value in (low, high):
            assert cfg.parse(f"kdf.{name}", str(value)) == value
            assert accepted(**(extra | {name: value})), (name, value)
        for value in (low - 1, high + 1):
            with pytest.raises(ValidationException):
                cfg.parse(f"kdf.{name}", str(value))
            assert not accepted(**(extra | {name: value})), (name, value)


def test_built_in_defaults_match_the_code_they_stand_for() -> None:
    tree = ast.parse((ROOT / "kmsctl" / "keyring" / "keyring.py").read_text())
    default_kdf = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DEFAULT_KDF"
    )
    assert {k: cfg.SETTINGS[f"kdf.{k}"].default for k in cfg.KDF_BOUNDS} == default_kdf
    assert cfg.SETTINGS["session_ttl"].default == TTL_DEFAULT
    assert cfg.SETTINGS["output"].check("auto") == cfg.SETTINGS["output"].default


def test_seal_key_from_config(cli: Any, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/backup", TargetKeyId=key)
    other = kms.create_key()["KeyMetadata"]["KeyId"]

    r = cli("seal", input=b"data")  # neither -k nor seal.key: the AWS managed key
    assert r.exit_code == 0, r.stderr
    managed = kms.describe_key(KeyId="alias/aws/kmsctl")["KeyMetadata"]["KeyId"]
    assert json.loads(cli("-o", "json", "inspect", input=r.stdout_bytes).stdout)["KeyId"].endswith(managed)

    assert cli("config", "set", "seal.key", "alias/backup").exit_code == 0
    sealed = cli("seal", input=b"backup data")
    assert sealed.exit_code == 0, sealed.stderr
    inspected = json.loads(cli("-o", "json", "inspect", input=sealed.stdout_bytes).stdout)
    assert inspected["KeyId"].endswith(key)
    assert cli("unseal", input=sealed.stdout_bytes).stdout_bytes == b"backup data"

    flagged = cli("seal", "-k", other, input=b"x")  # the flag wins over config.toml
    assert json.loads(cli("-o", "json", "inspect", input=flagged.stdout_bytes).stdout)["KeyId"].endswith(other)


# ----- never read when not needed -----


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["encrypt", "--help"], ["config", "--help"], ["completion", "bash"]],
)
def test_help_version_and_completion_never_read_the_file(sub: Any, keyring_home: Path, args: list[str]) -> None:
    write_config(keyring_home, "this is [not toml\n")
    r = sub(*args)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    env = {"_KMSCTL_COMPLETE": "bash_complete", "COMP_WORDS": "kmsctl desc", "COMP_CWORD": "1"}
    r = sub(env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"plain,describe\n", b"")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["config", "--help"]])
def test_help_path_does_not_import_tomllib(keyring_home: Path, args: list[str]) -> None:
    write_config(keyring_home, 'output = "json"\n')
    code = (
        "import sys, json\n"
        "from kmsctl.cli import run\n"
        f"rc = run({args!r})\n"
        "sys.stderr.write(json.dumps([rc, sorted({'tomllib', 'tomli_w', 'rich'} & set(sys.modules))]))\n"
    )
    env = {**os.environ, "KMSCTL_HOME": str(keyring_home)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    rc, loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert (rc, loaded) == (0, [])

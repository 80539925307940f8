"""``config.toml`` in the kmsctl home: the known keys, their types and checks,
reading (tomllib), writing (tomli-w) and precedence.

A value comes from, first to last: a command-line flag, the environment,
config.toml, the built-in default (``resolve``). No click, no rich: the CLI
(kmsctl.cli.config_cmds, kmsctl.cli.app) is a thin layer over these functions.
The file is read only when a value is first needed, so ``--help``,
``--version`` and shell completion never open it.

A broken file is one line of error naming the file and the line, exit 2
(ValidationException): a default that silently replaced a typo would be worse.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from kmsctl.errors import ValidationException
from kmsctl.model import SESSION_TTL_MAX_S
from kmsctl.text import is_text

FILENAME = "config.toml"
FILE_MAX = 1 << 20  # far above any real settings file
OUTPUTS = ("auto", "table", "json", "text")
# the bounds the keyring header accepts (kmsctl.keyring.keyring._checked_header):
# a config value outside them would make a keyring that no kmsctl opens
KDF_BOUNDS = {"iterations": (1, 64), "memory_kib": (1024, 16 << 20), "lanes": (1, 64)}
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}  # a duration's unit, in seconds
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

ORIGINS = ("flag", "env", "config", "default")


def duration_seconds(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``8h``, ``7d`` -> seconds (1s .. 30d)."""
    m = _DURATION.fullmatch(text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"expected a duration like 30m, 8h or 7d, got {text!r}")
    seconds = int(m.group(1)) * UNITS[m.group(2)]
    if seconds > SESSION_TTL_MAX_S:
        raise ValueError(f"a session lasts at most 30d, got {text!r}")
    return seconds


def _output(value: Any) -> str:
    value = value.lower() if isinstance(value, str) else value  # -o JSON is -o json
    if not isinstance(value, str) or value not in OUTPUTS:
        raise ValueError(f"expected one of {', '.join(OUTPUTS)}, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def _duration(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value}s"
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 30m, 8h or 7d, got {value!r}")
    duration_seconds(value)
    return value.strip()


def _kdf(name: str) -> Callable[[Any], int]:
    low, high = KDF_BOUNDS[name]

    def check(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    return check


def _key(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 2048:
        raise ValueError(f"expected a key ID, key ARN, alias/NAME or alias ARN, got {value!r}")
    return value.strip()


BACKENDS = ("local", "aws")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")


def _backend(value: Any) -> str:
    value = value.lower() if isinstance(value, str) else value
    if not isinstance(value, str) or value not in BACKENDS:
        raise ValueError(f"expected one of {', '.join(BACKENDS)}, got {value!r}")
    return value


def _endpoint_url(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", value.strip()):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value.strip()


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256 or not is_text(value):
        raise ValueError(f"expected a name, got {value!r}")
    return value.strip()


def _region(value: Any) -> str:
    if not isinstance(value, str) or not _REGION.fullmatch(value.strip()):
        raise ValueError(f"expected a region like us-east-1, got {value!r}")
    return value.strip()


def _module_path(value: Any) -> str:
    if not isinstance(value, str) or not os.path.isabs(value.strip()) or not is_text(value):
        raise ValueError(f"expected the absolute path of a PKCS#11 module (.so), got {value!r}")
    return value.strip()


class Setting(NamedTuple):  # not a dataclass: dataclasses costs --help a few ms to import
    name: str
    check: Callable[[Any], Any]
    default: Any
    kind: str  # what `config set` takes, for help and the man page
    help: str
    flag: str | None = None
    env: str | None = None


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("output", _output, "auto", "auto|table|json|text", "Result format.", "-o/--output", "KMSCTL_OUTPUT"),
        Setting(
            "color", _bool, True, "true|false", "Color and bold in tables; NO_COLOR turns it off.", "--no-color",
            "NO_COLOR",
        ),
        Setting("session_ttl", _duration, "1h", "DURATION", "Lifetime of a session from unlock.", "unlock --ttl"),
        Setting("kdf.iterations", _kdf("iterations"), 3, "1..64", "Argon2id passes, for keyrings made by init."),
        Setting("kdf.memory_kib", _kdf("memory_kib"), 65536, "1024..16777216", "Argon2id memory in KiB, for init."),
        Setting("kdf.lanes", _kdf("lanes"), 4, "1..64", "Argon2id parallelism, for keyrings made by init."),
        Setting("seal.key", _key, None, "KEY", "The key seal uses when -k is not given.", "seal -k"),
        Setting(
            "backend", _backend, "local", "local|aws", "Where keys live: the local keyring, or an AWS KMS endpoint.",
            "--backend", "KMSCTL_BACKEND",
        ),
        Setting(
            "endpoint_url", _endpoint_url, None, "URL", "The AWS KMS endpoint (a kmsctl serve); implies backend aws.",
            "--endpoint-url", "KMSCTL_ENDPOINT_URL",
        ),
        Setting("profile", _name, None, "NAME", "The AWS profile, for the aws backend.", "--profile", "AWS_PROFILE"),
        Setting("region", _region, None, "REGION", "The AWS region, for the aws backend.", "--region", "AWS_REGION"),
        Setting(
            "pkcs11.module", _module_path, None, "PATH", "The PKCS#11 module of the keyring's token (a .so file).",
            None, "KMSCTL_PKCS11_MODULE",
        ),
        Setting("pkcs11.token", _name, None, "LABEL", "The token label when a PKCS#11 URI names none."),
    )
}  # fmt: skip


def path(home: str) -> str:
    return os.path.join(home, FILENAME)


def setting(name: str) -> Setting:
    try:
        return SETTINGS[name]
    except KeyError:
        raise ValidationException(f"unknown config key {name!r}", hint=f"the keys are {', '.join(SETTINGS)}") from None


def parse(name: str, value: Any) -> Any:
    """``value`` (text from the command line, or a TOML value) checked and typed for ``name``."""
    s = setting(name)
    if isinstance(value, str) and not is_text(value):
        raise ValidationException(f"{name}: the value is not UTF-8 text")
    try:
        return s.check(value)
    except ValueError as exc:
        raise ValidationException(f"{name}: {exc}") from None


def _line_of(text: str, name: str) -> int | None:
    """The line that sets ``name`` (``a.b`` may be ``b`` under ``[a]``), for error messages."""
    leaf = name.rpartition(".")[2]
    current, fallback = "", None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped)
        if header:
            current = header.group(1)
            continue
        key = re.match(r"([A-Za-z0-9_.\-\"' ]+?)\s*=", stripped)
        if key:
            own = key.group(1).replace('"', "").replace("'", "").replace(" ", "")
            if ".".join(p for p in (current, own) if p) == name:
                return number
            fallback = fallback or (number if own == leaf else None)
    return fallback


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_config_file(file: str) -> bytes | None:
    """The file's bytes, None if there is none. Only a regular file (a symlink
    to one is fine) of at most FILE_MAX bytes: a FIFO would block and a device
    like /dev/zero never end. O_NONBLOCK keeps opening a FIFO from waiting."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValidationException(f"{file}: cannot read the config file: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValidationException(f"{file}: the config file is not a regular file", hint="replace or remove it")
    with os.fdopen(fd, "rb") as f:
        try:
            raw = f.read(FILE_MAX + 1)
        except OSError as exc:
            raise ValidationException(f"{file}: cannot read the config file: {exc.strerror}") from None
    if len(raw) > FILE_MAX:
        raise ValidationException(f"{file}: the config file is larger than {FILE_MAX >> 20} MiB")
    return raw


def load(home: str) -> dict[str, Any]:
    """The file's settings as ``{"kdf.lanes": 4, ...}``, checked; {} if there is no file."""
    file = path(home)
    raw = read_config_file(file)
    if raw is None:
        return {}
    import tomllib

    try:
        text = raw.decode("utf-8")
        doc = tomllib.loads(text)
    except RecursionError:
        raise ValidationException(
            f"{file}: arrays or tables nested too deeply", hint="fix or remove the file"
        ) from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValidationException(f"{file}, line {line}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(m.group(1)) if m else text.count("\n") + 1  # "(at end of document)"
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise ValidationException(f"{file}, line {line}: {reason}", hint="fix or remove the file") from None
    values: dict[str, Any] = {}
    for name, value in _flatten(doc).items():
        where = f"{file}, line {_line_of(text, name) or '?'}"
        if name not in SETTINGS:
            raise ValidationException(f"{where}: unknown key {name!r}", hint=f"the keys are {', '.join(SETTINGS)}")
        try:
            values[name] = SETTINGS[name].check(value)
        except ValueError as exc:
            raise ValidationException(f"{where}: {name}: {exc}") from None
    return values


def save(home: str, values: Mapping[str, Any]) -> str:
    """Write ``values`` (flat dotted names) as config.toml, atomically, mode 0600."""
    import tomli_w

    doc: dict[str, Any] = {}
    for name in sorted(values, key=lambda n: ("." in n, n)):  # top-level keys before [tables]
        table, _, leaf = name.rpartition(".")
        (doc.setdefault(table, {}) if table else doc)[leaf] = values[name]
    from kmsctl.outfile import atomic_file

    os.makedirs(home, mode=0o700, exist_ok=True)
    file = path(home)
    with atomic_file(file, replace=True) as f:
        f.write(b"# kmsctl settings: see 'man kmsctl.toml' or 'kmsctl config list --origin'\n")
        f.write(tomli_w.dumps(doc).encode())
    return file


def _from_env(name: str, env: Mapping[str, str]) -> Any:
    s = SETTINGS[name]
    if s.env is None:
        return None
    raw = env.get(s.env)
    if not raw:
        return None
    if name == "color":  # no-color.org: present and not empty means no color
        return False
    try:
        return s.check(raw)
    except ValueError as exc:
        raise ValidationException(f"{s.env}: {exc}") from None


def resolve(
    name: str,
    *,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
) -> tuple[Any, str]:
    """(value, origin) for ``name``: flag > environment > config.toml > default.
    ``config`` may be a function, called only if flag and environment are silent."""
    s = setting(name)
    if flags.get(name) is not None:
        return flags[name], "flag"
    value = _from_env(name, env)
    if value is not None:
        return value, "env"
    values = config() if callable(config) else config
    if name in values:
        return values[name], "config"
    return s.default, "default"


def kdf_params(values: Mapping[str, Any], default: Mapping[str, int]) -> dict[str, int] | None:
    """Argon2id parameters for a new keyring: ``default`` with the kdf.* keys
    of config.toml over it; None when the file sets none."""
    chosen = {k: values[f"kdf.{k}"] for k in KDF_BOUNDS if f"kdf.{k}" in values}
    if not chosen:
        return None
    params = {**default, **chosen}
    if params["memory_kib"] < 8 * params["lanes"]:
        raise ValidationException(
            f"kdf.memory_kib ({params['memory_kib']}) must be at least 8 x kdf.lanes ({params['lanes']})"
        )
    return params

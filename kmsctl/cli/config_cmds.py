"""Config commands: config get|set|unset|list, over kmsctl.config (imported
in the command bodies, so that --help does not pay for it)."""

from __future__ import annotations

from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.complete import complete_config_keys, complete_config_value
from kmsctl.errors import NotFoundException
from kmsctl.render import emit


def shown(value: Any) -> str:
    """A value as `config get` prints it and `config set` takes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def new_keyring_kdf(app: App) -> dict[str, int] | None:
    """Argon2id parameters for ``init``: config.toml's kdf.* over the built-in ones."""
    from kmsctl import config as cfg
    from kmsctl.keyring import keyring as kr

    return cfg.kdf_params(app.config(), kr.DEFAULT_KDF)


@click.group()
def config() -> None:
    """Defaults in config.toml in --home: output, color, sessions, new keyrings, seal.

    \b
    kmsctl config set output json            # as -o json, unless -o or KMSCTL_OUTPUT
    kmsctl config set session_ttl 8h         # unlock's --ttl
    kmsctl config set seal.key alias/backup  # seal's -k
    kmsctl config list --origin              # values, and where each came from

    \b
    KEY             VALUES                DEFAULT  ALSO SET BY
    output          auto|table|json|text  auto     -o, KMSCTL_OUTPUT
    color           true|false            true     --no-color, NO_COLOR
    session_ttl     90s, 15m, 8h, 7d      1h       unlock --ttl
    kdf.iterations  1..64                 3        (Argon2id cost of keyrings
    kdf.memory_kib  1024..16777216        65536     made by init afterwards)
    kdf.lanes       1..64                 4
    seal.key        KEY                   (none)   seal -k

    A value comes from, first to last: a flag, the environment, config.toml,
    the built-in default. The file is TOML (man kmsctl.toml); a broken one is
    an error naming the file and line (exit 2), never silently ignored.
    """


@config.command("get")
@click.argument("name", metavar="KEY", shell_complete=complete_config_keys)
@click.pass_obj
def config_get(app: App, name: str) -> None:
    """Print the value KEY has now (flag, environment, config.toml or default).

    Exit 3 if KEY has no value (seal.key unset). Text output: the value.
    """
    value, origin = app.setting(name)
    if value is None:
        raise NotFoundException(f"{name} is not set", hint=f"set it with 'kmsctl config set {name} VALUE'")
    emit(
        app,
        {"Key": name, "Value": value, "Origin": origin},
        columns=["Value"],
        rows=[[shown(value)]],
    )


@config.command("set")
@click.argument("name", metavar="KEY", shell_complete=complete_config_keys)
@click.argument("value", metavar="VALUE", shell_complete=complete_config_value)
@click.pass_obj
def config_set(app: App, name: str, value: str) -> None:
    """Write KEY = VALUE into config.toml (checked first; the file is replaced atomically, mode 0600)."""
    from kmsctl import config as cfg

    typed = cfg.parse(name, value)
    values = {**app.config(), name: typed}
    if name.startswith("kdf."):
        cfg.kdf_params(values, {k: cfg.SETTINGS[f"kdf.{k}"].default for k in cfg.KDF_BOUNDS})
    path = cfg.save(app.home, values)
    app.info(f"kmsctl: {name} = {shown(typed)} in {path}")


@config.command("unset")
@click.argument("name", metavar="KEY", shell_complete=complete_config_keys)
@click.pass_obj
def config_unset(app: App, name: str) -> None:
    """Remove KEY from config.toml: its default applies again. Unsetting an unset key is no error."""
    from kmsctl import config as cfg

    cfg.setting(name)
    values = dict(app.config())
    if values.pop(name, None) is None:
        app.info(f"kmsctl: {name} was not set")
        return
    path = cfg.save(app.home, values)
    app.info(f"kmsctl: {name} removed from {path}")


@config.command("list")
@click.option("--origin", is_flag=True, help="Also show where each value came from: flag, env, config or default.")
@click.pass_obj
def config_list(app: App, origin: bool) -> None:
    """Every config key and the value it has now.

    Text columns: KEY VALUE, and ORIGIN with --origin (flag, env, config,
    default). -o json: {"File": ..., "Settings": [{"Key", "Value", "Origin"}]}.
    """
    from kmsctl import config as cfg

    settings = []
    for name in cfg.SETTINGS:
        value, where = app.setting(name)
        settings.append({"Key": name, "Value": value, **({"Origin": where} if origin else {})})
    columns = ["Key", "Value", "Origin"] if origin else ["Key", "Value"]
    rows = [[s["Key"], shown(s["Value"]), *([s["Origin"]] if origin else [])] for s in settings]
    emit(app, {"File": cfg.path(app.home), "Settings": settings}, columns=columns, rows=rows)

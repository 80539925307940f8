"""Small helpers several test modules share."""

from __future__ import annotations

import gc
import importlib.util
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from click.testing import CliRunner

from kmsctl.cli import run


def sql(home: Path, script: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on a keyring's database, outside kmsctl."""
    conn = sqlite3.connect(home / "keyring.db", isolation_level=None)
    try:
        rows = conn.execute(script, args).fetchall()
    finally:
        conn.close()
    return rows


def load_script(path: Path, name: str) -> ModuleType:
    """Import a script that is not in a package (the vector generators)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Out:
    code: int
    stdout: bytes
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(home: Path, *args: str, passfile: Path | None = None, env: dict[str, str | None] | None = None) -> Out:
    """The real CLI entry point (error boundary included), in-process, on ``home``."""
    full_env: dict[str, str | None] = {
        "KMSCTL_HOME": str(home),
        "KMSCTL_PASSPHRASE_FILE": str(passfile) if passfile else None,
    }
    full_env.update(env or {})
    with CliRunner().isolation(env=full_env) as (out, err, _), closing_new_keyrings():
        code = run(list(args))
    return Out(code, out.getvalue(), err.getvalue().decode(errors="replace"))


@contextmanager
def closing_new_keyrings() -> Iterator[None]:
    """Close the keyring connections opened inside, as the process exit would
    (main() closes them). Explicit, rather than gc.collect(), whose full pass
    over a long test session's heap costs more than the command itself."""
    from kmsctl.keyring import store

    before = set(store._OPEN)
    try:
        yield
    finally:
        for db in set(store._OPEN) - before:
            db.close()


def checkpoint(home: Path) -> None:
    """Fold the WAL into keyring.db; as the last connection, sqlite removes -wal/-shm."""
    gc.collect()
    conn = sqlite3.connect(home / "keyring.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()

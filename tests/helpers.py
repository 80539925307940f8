"""Small helpers several test modules share."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any


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

"""The layering rules README's Development section states, kept by reading the code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from kmsctl.cli import COMMANDS, LazyGroup, cli

PKG = Path(__file__).resolve().parent.parent / "kmsctl"
CORE = ["service", "keyring", "crypto", "errors.py", "model.py"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _files(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        p = PKG / part
        out.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return out


@pytest.mark.parametrize("path", _files(*CORE), ids=lambda p: str(p.relative_to(PKG)))
def test_core_never_imports_click_or_rich(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in {"click", "rich"}}
    assert not bad, f"{path} imports {bad}"


# the only modules that may import pyca/cryptography, in any way
PRIMITIVES = {PKG / "crypto" / "primitives.py", PKG / "crypto" / "primitives_pk.py"}


def _named_modules(path: Path) -> set[str]:
    """Module names given as text to an import function (``LazyModule("x")``,
    ``importlib.import_module("x")``, ``__import__("x")``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in {"LazyModule", "import_module", "__import__"} and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


@pytest.mark.parametrize("path", _files("."), ids=lambda p: str(p.relative_to(PKG)))
def test_only_the_primitives_modules_import_cryptography(path: Path) -> None:
    if path in PRIMITIVES:
        return
    bad = {m for m in _imports(path) | _named_modules(path) if m.split(".")[0] == "cryptography"}
    assert not bad, f"{path} imports {bad}; only {sorted(p.name for p in PRIMITIVES)} may"


def test_the_primitives_modules_exist_and_import_cryptography() -> None:
    for path in PRIMITIVES:
        assert any(m.split(".")[0] == "cryptography" for m in _imports(path)), path


def test_the_import_check_sees_every_way_of_importing(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    for line in (
        "import cryptography",
        "from cryptography.hazmat.primitives import hashes",
        "from cryptography import exceptions",
        "def f():\n    import cryptography.x509",
        "X = LazyModule('cryptography.hazmat.primitives.asymmetric.mlkem')",
        "import importlib\nimportlib.import_module('cryptography.exceptions')",
    ):
        sample.write_text(line + "\n")
        assert any(m.split(".")[0] == "cryptography" for m in _imports(sample) | _named_modules(sample)), line


@pytest.mark.parametrize("path", _files("."), ids=lambda p: str(p.relative_to(PKG)))
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 450, f"{path} has grown past ~400 lines: split it"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["encrypt", "--help"]])
def test_help_and_version_load_neither_cryptography_nor_rich(args: list[str]) -> None:
    code = (
        "import sys, json\n"
        "from kmsctl.cli import run\n"
        f"rc = run({args!r})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'rich', 'sqlite3'})\n"
        "sys.stderr.write(json.dumps([rc, heavy]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    rc, heavy = json.loads(proc.stderr.strip().splitlines()[-1])
    assert rc == 0
    assert heavy == []


def _all_commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    out: list[tuple[str, click.Command]] = []
    group = cli
    assert isinstance(group, LazyGroup)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        out.append((name, cmd))
        if isinstance(cmd, click.Group):
            out.extend((f"{name} {sub}", cmd.commands[sub]) for sub in cmd.commands)
    return out


@pytest.mark.parametrize(("name", "command"), _all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_and_option_is_documented(name: str, command: click.Command) -> None:
    assert command.help and len(command.help.strip()) > 10, f"'kmsctl {name}' has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"'kmsctl {name}' option {param.opts} has no help text"


def test_lazy_command_table_points_at_real_commands() -> None:
    for name, target in COMMANDS.items():
        module, attr = target.split(":")
        __import__(module)
        assert isinstance(getattr(sys.modules[module], attr), click.Command), name


# ----- one dispatch point: no side doors around it -----
SQL_CALLS = {"execute", "executemany", "executescript", "query"}
STORAGE = {"kmsctl.keyring.store", "kmsctl.keyring.audit"}  # the database and the trail's rows


@pytest.mark.parametrize("path", _files("cli"), ids=lambda p: str(p.relative_to(PKG)))
def test_cli_modules_run_no_sql_and_reach_no_storage(path: Path) -> None:
    tree = ast.parse(path.read_text())
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert not calls & SQL_CALLS, f"{path} runs SQL ({calls & SQL_CALLS}): go through a LocalKMS operation"
    imported = _imports(path) | {
        f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module for a in n.names
    }
    assert not imported & STORAGE, f"{path} imports {imported & STORAGE}"


# public LocalKMS attributes that are deliberately not operations
NOT_OPERATIONS = {
    "exceptions": "boto3's client.exceptions",
    "key_arn": "an identifier, computed",
    "alias_arn": "an identifier, computed",
    "transaction": "groups operations, each dispatched on its own",
    "snapshot": "groups operations, each dispatched on its own",
    "internal_reads": "marks the client's own reads, each dispatched on its own",
    "key_metadata": "DescribeKey (dispatched) as a read the client makes for itself",
    "store_by_name_or_id": "DescribeCustomKeyStores (dispatched) as a read the client makes for itself",
    "act_as": "sets who the following requests are made as (the caller they are decided for)",
    "caller": "the identity requests are made as, as act_as set it",
    "dry_run": "the client's default for DryRun, applied by the dispatch point",
    "grant_tokens": "the client's default GrantTokens, applied by the dispatch point",
    "peek_metadata": "a key's metadata for the CLI's defaults while acting as a principal; no secret",
    "signing_secret": "an access key's secret for kmsctl serve checking a signature; the request makes the record",
    "record_failed_try": "a refused passphrase typed again at the prompt, recorded by the dispatch point",
}


def test_every_public_client_method_is_an_operation() -> None:
    from kmsctl.service import LocalKMS

    public = {name for name in dir(LocalKMS) if not name.startswith("_")}
    side_doors = sorted(n for n in public - set(NOT_OPERATIONS) if not hasattr(getattr(LocalKMS, n), "operation_name"))
    assert side_doors == [], f"public LocalKMS methods that bypass the dispatch point: {side_doors}"
    assert set(NOT_OPERATIONS) <= public  # the list stays true


def test_records_are_made_only_at_the_dispatch_point() -> None:
    makers = sorted(
        str(path.relative_to(PKG))
        for path in _files(".")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "build_event"
    )
    assert makers == ["service/dispatch.py"]

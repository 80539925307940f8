"""Manual pages: fresh (regenerated in a temporary folder and compared), complete
(every command, group, subcommand and option; every config key), clean under
groff and mandoc's linters, opened by ``kmsctl help``, and installed by the wheel."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest

from kmsctl.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
EXE = Path(sys.executable).with_name("kmsctl")


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_man", ROOT / "scripts" / "gen_man.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_man = _load_generator()
COMMANDS = list(gen_man.walk())
PAGES = sorted(MAN.glob("kmsctl*.[15]"))


def roff(text: str) -> str:
    return text.replace("-", "\\-")


def section(page: str, name: str) -> str:
    m = re.search(rf"^\.SH {re.escape(name)}\n(.*?)(?=^\.SH |\Z)", page, re.S | re.M)
    assert m, f"no {name} section"
    return m.group(1)


# ----- fresh and complete -----


def test_pages_are_fresh(tmp_path: Path) -> None:
    """Regenerated in a temporary folder, the pages equal the committed ones, and no page is extra."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_man.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = {p.name: p.read_text() for p in tmp_path.glob("kmsctl*.[15]")}
    committed = {p.name: p.read_text() for p in PAGES}
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, f"stale, missing or extra pages {stale}: run .venv/bin/python scripts/gen_man.py"


def test_check_mode_notices_a_stale_page(tmp_path: Path) -> None:
    out = tmp_path / "man"
    assert gen_man.main(["--out", str(out)]) == 0
    assert gen_man.main(["--out", str(out), "--check"]) == 0
    page = out / "kmsctl-encrypt.1"
    page.write_text(page.read_text().replace("\\-\\-base64", "\\-\\-b64"))
    assert gen_man.main(["--out", str(out), "--check"]) == 1
    (out / "kmsctl-gone.1").write_text(".TH X 1\n")
    assert gen_man.main(["--out", str(out)]) == 0
    assert not (out / "kmsctl-gone.1").exists()


def test_every_command_group_and_subcommand_has_a_page() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"encrypt", "alias", "alias create", "rotation enable", "config set", "help", "completion"} <= names
    for path, command in COMMANDS:
        page = MAN / f"{'-'.join(['kmsctl', *path])}.1"
        assert page.is_file(), f"no page for 'kmsctl {' '.join(path)}'"
        text = page.read_text()
        for name in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
            section(text, name)
        assert f".B {roff(' '.join(path))}\n" in section(text, "SYNOPSIS")
        if isinstance(command, click.Group):
            listed = section(text, "COMMANDS")
            for sub in command.commands:
                assert roff(f"kmsctl-{'-'.join(path)}-{sub}") in listed


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_option_is_on_its_page(path: tuple[str, ...], command: click.Command) -> None:
    text = (MAN / f"{'-'.join(['kmsctl', *path])}.1").read_text()
    options = section(text, "OPTIONS")
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:  # hidden: the global options, again
            for opt in [*param.opts, *param.secondary_opts]:
                assert f"\\fB{roff(opt)}\\fR" in options, f"'kmsctl {' '.join(path)}' {opt} is not on its page"
    assert "\\fB\\-h\\fR, \\fB\\-\\-help\\fR" in options


def test_overview_page() -> None:
    text = (MAN / "kmsctl.1").read_text()
    order = [m.group(1) for m in re.finditer(r"^\.SH (.+)$", text, re.M)]
    assert order == [
        "NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES",
        "EXAMPLES", "SECURITY", "SEE ALSO",
    ]  # fmt: skip
    listed = section(text, "COMMANDS")
    for path, _ in COMMANDS:
        assert f"\\fB{roff(' '.join(path))}\\fR" in listed
    options = section(text, "OPTIONS")
    from kmsctl.cli import cli

    for param in cli.params:
        for opt in getattr(param, "opts", []):
            assert f"\\fB{roff(opt)}\\fR" in options, opt
    exit_status = section(text, "EXIT STATUS")
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 8, 70, 130):
        assert f".TP\n\\fB{code}\\fR\n" in exit_status
    environment = section(text, "ENVIRONMENT")
    for name in ("KMSCTL_HOME", "KMSCTL_OUTPUT", "NO_COLOR", "KMSCTL_SESSION", "KMSCTL_PASSPHRASE_FILE"):
        assert f"\\fB{name}\\fR" in environment
    examples = section(text, "EXAMPLES")
    assert "%.enc: %.txt\n        kmsctl encrypt" in examples  # a Makefile rule and its recipe
    assert "if kmsctl verify" in examples


def test_config_page_lists_every_key() -> None:
    text = (MAN / "kmsctl.toml.5").read_text()
    assert text.splitlines()[1].startswith(".TH KMSCTL.TOML 5 ")
    keys = section(text, "KEYS")
    for name, setting in SETTINGS.items():
        assert f".TP\n\\fB{roff(name)}\\fR\n" in keys
        if setting.env:
            assert roff(setting.env) in keys
    for name in ("PRECEDENCE", "EXAMPLES", "FILES", "SEE ALSO"):
        section(text, name)


# ----- lint -----


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_groff_reports_nothing(page: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (.ci/run installs it)")
    proc = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_mandoc_lint_reports_nothing() -> None:
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed (.ci/run installs it)")
    proc = subprocess.run(["mandoc", "-Tlint", *map(str, PAGES)], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


# ----- kmsctl help -----


def test_help_opens_the_page_with_man(sub: Any) -> None:
    if shutil.which("man") is None:
        pytest.skip("man is not installed (.ci/run installs man-db)")
    r = sub("help", "alias", "create", env={"MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"})
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "KMSCTL-ALIAS-CREATE(1)" in out and "SYNOPSIS" in out and "kmsctl alias create alias/app" in out
    r = sub("help", env={"MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"})
    assert "KMSCTL(1)" in r.stdout.decode() and "EXIT STATUS" in r.stdout.decode()


def test_help_without_man_prints_the_command_help(sub: Any, tmp_path: Path) -> None:
    r = sub("help", "encrypt", env={"PATH": str(tmp_path)})  # no man on PATH
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().startswith("Usage: kmsctl encrypt [OPTIONS] [INPUT]")
    assert "--key" in r.stdout.decode()


def test_help_names_an_unknown_command(cli: Any) -> None:
    for args in (["nope"], ["alias", "nope"], ["encrypt", "more"]):
        r = cli("help", *args)
        assert r.exit_code == 2
        assert r.stderr.startswith("kmsctl: UsageError: ") and "has no command" in r.stderr


# ----- packaging -----


@pytest.mark.slow
def test_the_wheel_installs_pages_and_completions(tmp_path: Path) -> None:
    """`pip wheel` of a copy of the source tree holds the data files, and an
    install puts them under the environment's prefix, where man finds them."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "kmsctl", "man", "completions"):
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, src / name)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    proc = subprocess.run(
        [*pip, "wheel", "--no-deps", str(src), "-w", str(dist)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = dist.glob("kmsctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split("/share/")[0] for n in names if "/share/" in n)
    expected = {
        "share/bash-completion/completions/kmsctl",
        "share/zsh/site-functions/_kmsctl",
        "share/fish/vendor_completions.d/kmsctl.fish",
        "share/man/man5/kmsctl.toml.5",
        *(f"share/man/man1/{p.name}" for p in PAGES if p.suffix == ".1"),
    }
    assert {f"{data}/{e}" for e in expected} <= names
    assert not any("/src/" in n for n in names if n.startswith(data))  # man/src is not installed

    # into a new environment of its own: `pip install --prefix` would uninstall
    # the kmsctl of the environment running the tests
    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    proc = subprocess.run(
        [*pip, "--python", str(prefix / "bin" / "python"), "install", "--no-deps", "--no-compile", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (prefix / "share/bash-completion/completions/kmsctl").read_text() == (
        ROOT / "completions/kmsctl.bash"
    ).read_text()
    assert (prefix / "share/zsh/site-functions/_kmsctl").is_file()
    assert (prefix / "share/fish/vendor_completions.d/kmsctl.fish").is_file()
    if shutil.which("man"):
        env = {**os.environ, "MANPATH": str(prefix / "share/man")}
        for page, path in (("kmsctl-encrypt", "man1/kmsctl-encrypt.1"), ("kmsctl.toml", "man5/kmsctl.toml.5")):
            found = subprocess.run(["man", "-w", page], env=env, capture_output=True, text=True, check=False)
            assert found.stdout.strip() == str(prefix / "share/man" / path), found.stderr

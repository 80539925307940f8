"""Write the manual pages in man/ from the click command tree and the
hand-written text in man/src/:

    man/kmsctl.1                 overview (man/src/kmsctl.txt + every command and global option)
    man/kmsctl-COMMAND.1         every command, group and group subcommand (kmsctl-alias-create.1)
    man/kmsctl.toml.5            config.toml (man/src/kmsctl.toml.txt + kmsctl.config.SETTINGS)

    .venv/bin/python scripts/gen_man.py [--out DIR] [--check]

Per-command EXAMPLES come from man/src/examples.txt (``== alias create``).
The markup of man/src/*.txt: ``== NAME`` starts a section; paragraphs are
separated by blank lines; a paragraph indented 4 spaces is an example shown
as is; ``- `` starts a bullet; ``: TERM`` starts a tagged paragraph; text in
backquotes is bold and ``name(N)`` is a manual reference.
--check writes nothing and exits 1 if a page in DIR is missing, stale or extra.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from kmsctl.cli import cli
from kmsctl.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "man" / "src"
DATE = "2026-11-28"  # of the page text; bump it when the hand-written text changes much
SOURCE = "kmsctl"
MANUAL = "kmsctl manual"


# ----- roff text -----


def esc(text: str) -> str:
    """Text safe inside a roff line: backslashes, minus signs, non-ASCII."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in out)


def inline(text: str) -> str:
    """Escaped text with `bold` spans and name(N) references in bold."""
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", out)
    return re.sub(r"(?<![\w\\])([A-Za-z_][\w.]*(?:\\-[\w.]+)*)\(([1-8])\)", r"\\fB\1\\fR(\2)", out)


def _protect(line: str) -> str:
    return "\\&" + line if line.startswith((".", "'")) else line


def text_line(text: str, markup: bool = True) -> str:
    """One line shown as is (an example)."""
    return _protect((inline(text) if markup else esc(text)).rstrip())


def fill(text: str, markup: bool = True, width: int = 78) -> list[str]:
    """Filled text as input lines of at most ``width`` bytes (mandoc -Tlint
    asks for 80), broken at spaces; roff refills them anyway."""
    words = (inline(" ".join(text.split())) if markup else esc(" ".join(text.split()))).split(" ")
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return [_protect(line) for line in lines if line]


def _paragraphs(text: str) -> Iterator[list[str]]:
    for para in re.split(r"\n[ \t]*\n", text.strip("\n")):
        lines = para.split("\n")
        if lines and any(line.strip() for line in lines):
            yield lines


def render(text: str) -> list[str]:
    """The roff lines of a section body in man/src markup (also click help text,
    where a paragraph after a lone \\b line is shown as is)."""
    out: list[str] = []
    for lines in _paragraphs(text):
        if lines[0].strip() == "\b" or all(line.startswith("    ") or not line.strip() for line in lines):
            body = lines[1:] if lines[0].strip() == "\b" else lines
            indent = min(len(line) - len(line.lstrip()) for line in body if line.strip())
            out += [".PP", ".RS 4", ".nf"]
            out += [text_line(line[indent:].expandtabs(8), markup=False) or "\\&" for line in body]
            out += [".fi", ".RE"]
        elif lines[0].startswith("- "):
            items: list[list[str]] = []
            for line in lines:
                if line.startswith("- "):
                    items.append([line[2:]])
                else:
                    items[-1].append(line.strip())
            for item in items:
                out += [".IP \\(bu 2", *fill(" ".join(item))]
        elif lines[0].startswith(": "):
            entries: list[list[str]] = []
            for line in lines:
                if line.startswith(": "):
                    entries.append([line[2:].strip()])
                else:
                    entries[-1].append(line.strip())
            for term, *body in entries:
                out += [".TP", f"\\fB{esc(term)}\\fR", *fill(" ".join(body))]
        else:
            out += [".PP", *fill(" ".join(lines))]
    # a paragraph macro right after a heading is redundant (mandoc -Tlint says so)
    return out[1:] if out[:1] == [".PP"] else out


def sections(path: Path) -> dict[str, str]:
    """``== NAME`` sections of a man/src file, in order."""
    found: dict[str, str] = {}
    name = None
    for line in path.read_text().splitlines():
        if line.startswith("== "):
            name = line[3:].strip()
            found[name] = ""
        elif name is not None:
            found[name] += line + "\n"
    return found


# ----- the command tree -----


def walk(command: click.Command = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command below the root, groups before their subcommands, in --help order."""
    ctx = click.Context(command)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield (*path, name), sub
            yield from walk(sub, (*path, name))


def root_context() -> click.Context:
    """The root context as kmsctl makes it (-h and --help, ...)."""
    return click.Context(cli, info_name="kmsctl", **cli.context_settings)


def page_name(path: tuple[str, ...]) -> str:
    return "-".join(["kmsctl", *path])


def _help(command: click.Command) -> str:
    return inspect.cleandoc(command.help or "").split("\f")[0]


def summary(command: click.Command) -> str:
    """The first sentence of the help, for NAME and command lists."""
    first = " ".join(re.split(r"\n\s*\n", _help(command))[0].split())
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", first)[0].rstrip(".")


def _usage_piece(piece: str) -> str:
    m = re.fullmatch(r"(\[?)(.*?)(\]?)((?:\.\.\.)?)", piece)
    assert m is not None
    return f"{m.group(1)}\\fI{esc(m.group(2))}\\fR{m.group(3)}{m.group(4)}"


def _metavar(param: click.Option, ctx: click.Context) -> str:
    if param.is_flag:
        return ""
    if param.metavar:
        return param.metavar
    if isinstance(param.type, click.Choice):
        return (param.name or "value").upper()
    return param.type.name.upper()


def options(command: click.Command, ctx: click.Context) -> list[str]:
    out: list[str] = []
    params = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    help_option = command.get_help_option(ctx)
    for param in [*params, *([help_option] if help_option else [])]:
        names = ", ".join(f"\\fB{esc(o)}\\fR" for o in [*param.opts, *param.secondary_opts])
        metavar = _metavar(param, ctx)
        out += [".TP", names + (f" \\fI{esc(metavar)}\\fR" if metavar else "")]
        notes = [" ".join((param.help or "").split())]
        if param.required:
            notes.append("Required.")
        if param.multiple and "repeat" not in (param.help or "").lower():
            notes.append("May be repeated.")
        if isinstance(param.type, click.Choice):
            notes.append("One of: " + ", ".join(str(c) for c in param.type.choices) + ".")
        if param.show_default and param.default not in (None, False, ()):
            notes.append(f"Default: {param.default}.")
        out += fill(" ".join(n for n in notes if n))
    return out


def header(name: str, section: str) -> list[str]:
    title = esc(name.upper())
    return [
        '.\\" Generated by scripts/gen_man.py from the click tree and man/src/; do not edit.',
        f'.TH {title} {section} {DATE} "{SOURCE}" "{MANUAL}"',
        ".nh",  # no hyphenation: option and variable names are copied from the page
        ".ad l",
    ]


def command_page(path: tuple[str, ...], command: click.Command, examples: dict[str, str]) -> str:
    name = page_name(path)
    ctx = click.Context(command, info_name=" ".join(["kmsctl", *path]), parent=root_context())
    lines = header(name, "1")
    lines += [".SH NAME", *fill(f"{name} - {summary(command)}", markup=False)]
    pieces = " ".join(_usage_piece(p) for p in command.collect_usage_pieces(ctx))
    lines += [".SH SYNOPSIS", ".B kmsctl", "[\\fIGLOBAL OPTIONS\\fR]", f".B {esc(' '.join(path))}", pieces]
    lines += [".SH DESCRIPTION", *render(_help(command))]
    if isinstance(command, click.Group):
        lines += [".SH COMMANDS"]
        for sub_path, sub in walk(command, path):
            lines += [".TP", f".BR {esc(page_name(sub_path))} (1)", *fill(summary(sub) + ".", markup=False)]
    lines += [".SH OPTIONS", *options(command, ctx)]
    lines += [".PP", *fill("The global options (`--home`, `-o`, `--passphrase-file`, ...) come before the command;")]
    lines += ["see", ".BR kmsctl (1)."]
    if " ".join(path) in examples:
        lines += [".SH EXAMPLES", *render(examples[" ".join(path)])]
    lines += [".SH EXIT STATUS", *fill(_exit_status(command))]
    see = ["kmsctl(1)"] + ([f"{page_name(path[:-1])}(1)"] if len(path) > 1 else [])
    see += [f"{page_name(p)}(1)" for p, _ in walk(command, path)] if isinstance(command, click.Group) else []
    see += ["kmsctl.toml(5)"] if path[0] in ("config", "init", "unlock", "seal") else []
    lines += [".SH SEE ALSO", *_references(see)]
    return "\n".join(lines) + "\n"


def _exit_status(command: click.Command) -> str:
    verdict = command.name in ("verify", "verify-mac")
    first = "0 if the signature or MAC verifies, 1 if it does not" if verdict else "0 on success"
    return f"{first}; otherwise the codes of kmsctl(1): 2 usage, 3 not found, 5 locked, and so on."


def _references(pages: list[str]) -> list[str]:
    out = []
    for i, page in enumerate(pages):
        name, section = page[:-3], page[-2]
        out.append(f".BR {esc(name)} ({section}){',' if i < len(pages) - 1 else ''}")
    return out


def main_page() -> str:
    hand = sections(SRC / "kmsctl.txt")
    ctx = root_context()
    lines = header("kmsctl", "1")
    lines += [".SH NAME", "kmsctl \\- AWS KMS keys, operations and semantics on one machine"]
    lines += [".SH SYNOPSIS", ".B kmsctl", "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]"]
    lines += [".SH DESCRIPTION", *render(hand.pop("DESCRIPTION"))]
    lines += [".SH COMMANDS"]
    for path, command in walk():
        lines += [".TP", f"\\fB{esc(' '.join(path))}\\fR", *fill(summary(command) + ".", markup=False)]
    lines += [
        ".PP",
        "Each command has its own page,",
        ".BR kmsctl\\-COMMAND (1),",
        "for instance",
        ".BR kmsctl\\-encrypt (1)",
        "or",
        ".BR kmsctl\\-alias\\-create (1);",
        "\\fBkmsctl help\\fR \\fICOMMAND\\fR opens it.",
    ]
    lines += [".SH OPTIONS", *options(cli, ctx)]
    for name in ("EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SECURITY"):
        lines += [f".SH {name}", *render(hand.pop(name))]
    assert not hand, f"man/src/kmsctl.txt has sections the page does not place: {list(hand)}"
    see = ["kmsctl.toml(5)", *(f"{page_name(p)}(1)" for p, _ in walk() if len(p) == 1)]
    lines += [".SH SEE ALSO", *_references(see)]
    return "\n".join(lines) + "\n"


def config_page() -> str:
    hand = sections(SRC / "kmsctl.toml.txt")
    lines = header("kmsctl.toml", "5")
    lines += [".SH NAME", "kmsctl.toml \\- kmsctl settings file, config.toml in the kmsctl home"]
    lines += [".SH SYNOPSIS", "\\fI$KMSCTL_HOME\\fR/config.toml"]
    lines += [".SH DESCRIPTION", *render(hand.pop("DESCRIPTION"))]
    lines += [".SH KEYS"]
    for s in SETTINGS.values():
        table, _, leaf = s.name.rpartition(".")
        where = f"{leaf} in table [{table}]" if table else "top level"
        facts = [s.help, f"Values: {s.kind}."]
        facts.append(f"Default: {s.default if not isinstance(s.default, bool) else str(s.default).lower()}."
                     if s.default is not None else "No default.")  # fmt: skip
        facts += [f"Environment: {s.env}."] if s.env else []
        facts += [f"Flag: {s.flag}."] if s.flag else []
        facts.append(f"In the file: {where}.")
        lines += [".TP", f"\\fB{esc(s.name)}\\fR", *fill(" ".join(facts), markup=False)]
    for name in ("PRECEDENCE", "NOTES", "EXAMPLES", "FILES"):
        lines += [f".SH {name}", *render(hand.pop(name))]
    assert not hand, f"man/src/kmsctl.toml.txt has sections the page does not place: {list(hand)}"
    lines += [".SH SEE ALSO", *_references(["kmsctl(1)", "kmsctl-config(1)"])]
    return "\n".join(lines) + "\n"


def generate() -> dict[str, str]:
    """File name -> page text, for every page."""
    examples = sections(SRC / "examples.txt")
    pages = {"kmsctl.1": main_page(), "kmsctl.toml.5": config_page()}
    for path, command in walk():
        pages[page_name(path) + ".1"] = command_page(path, command, examples)
    unused = set(examples) - {" ".join(p) for p, _ in walk()}
    assert not unused, f"man/src/examples.txt has examples for no command: {sorted(unused)}"
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the kmsctl manual pages.")
    parser.add_argument("--out", type=Path, default=ROOT / "man", help="folder to write (default man/)")
    parser.add_argument("--check", action="store_true", help="only report missing, stale or extra pages")
    args = parser.parse_args(argv)
    pages = generate()
    if args.check:
        have = {p.name for p in args.out.glob("kmsctl*.[15]")}
        bad = sorted(n for n in pages if not (args.out / n).is_file() or (args.out / n).read_text() != pages[n])
        bad += sorted(have - set(pages))
        if bad:
            print("stale, missing or extra: " + " ".join(bad) + " (run scripts/gen_man.py)", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for old in set(p.name for p in args.out.glob("kmsctl*.[15]")) - set(pages):
        (args.out / old).unlink()
    for name, text in pages.items():
        (args.out / name).write_text(text)
    print(f"{len(pages)} pages in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

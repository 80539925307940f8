"""Write completions/kmsctl.bash, completions/_kmsctl and completions/kmsctl.fish
(and completions/bash-completion/kmsctl, the bash script under the name the
package installs) from ``kmsctl completion SHELL`` (click's scripts for kmsctl).

    .venv/bin/python scripts/gen_completions.py [--out DIR] [--check]

--check writes nothing and exits 1 if a file in DIR is missing or stale
(tests/test_completion.py runs the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kmsctl.cli.complete import FILES, script

ROOT = Path(__file__).resolve().parent.parent


def generate() -> dict[str, str]:
    """File name (under completions/) -> content. bash-completion/kmsctl is
    kmsctl.bash again, under the name bash-completion looks up on first TAB,
    for the package to install as share/bash-completion/completions/kmsctl."""
    files = {name: script(shell) for shell, name in FILES.items()}
    files["bash-completion/kmsctl"] = files[FILES["bash"]]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "completions", help="folder to write (default completions/)")
    parser.add_argument("--check", action="store_true", help="only report missing or stale files")
    args = parser.parse_args(argv)
    stale = []
    for name, text in generate().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)
    if stale:
        print("stale: " + " ".join(stale) + " (run scripts/gen_completions.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

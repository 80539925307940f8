"""rich tables for people at a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from kmsctl.cli.app import App


def draw(app: App, columns: list[str], rows: list[list[str]], title: str | None) -> None:
    # --no-color / NO_COLOR: plain text, no colour and no bold either
    console = Console(file=sys.stdout, color_system=None if app.no_color else "auto", highlight=False)
    if not rows:
        console.print(Text("(none)"))
        return
    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="" if app.no_color else "bold", pad_edge=False)
    for i, name in enumerate(columns):
        # the first column is the identifier: never broken across lines
        table.add_column(name, overflow="fold", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(Text(value) for value in row))  # Text: no rich markup in user data
    console.print(table)

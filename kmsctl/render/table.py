"""rich tables for people at a terminal.

What a person reads must not be cut where it cannot be read: an identifier,
a state, a spec or an alias name is never broken across lines, at any
width. When the columns do not fit the terminal, in this order: free text
(Description) is shortened with an ellipsis, then low-value columns are
left out (Description, dates of secondary interest, empty columns), and if
even the remaining columns do not fit, each row is printed as a record, one
``Field  value`` line per column, which fits any width an identifier fits.
Lists (aliases, algorithms) wrap between their items, never inside one.

Times are shown in UTC to the minute, ``2026-12-01 22:30``; key states are
coloured (Enabled green, Disabled yellow, PendingDeletion red, the others
dim) unless colour is off (--no-color, NO_COLOR, ``color = false``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from kmsctl.cli.app import App

TIME_FORMAT = "%Y-%m-%d %H:%M"  # UTC, on every table
GAP = 2  # columns are two spaces apart
STATE_STYLES = {"Enabled": "green", "Disabled": "yellow", "PendingDeletion": "red"}
STATE_COLUMNS = frozenset({"KeyState"})
# free text: one line, shortened with an ellipsis, down to a few characters
FREE_TEXT = frozenset({"Description", "TagValue", "errorMessage"})
FREE_TEXT_MIN = 12
# left out first when the table is too wide, in this order (then empty columns)
DROP_ORDER = ("Description", "LastUpdatedDate", "CreationDate", "userName", "eventID", "AliasArn", "Arn")
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def console_for(app: App) -> Console:
    # --no-color / NO_COLOR: plain text, no colour and no bold either
    return Console(file=sys.stdout, color_system=None if app.no_color else "auto", highlight=False)


def human(value: Any, column: str = "") -> str:
    """One value as a person reads it: times (datetimes, and ISO 8601 text in
    a ...Time or ...Date column) in UTC to the minute, lists joined with ", ",
    no tab or newline."""
    if value is None:
        return ""
    if isinstance(value, str) and column.endswith(("Time", "Date")) and _ISO.match(value):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(TIME_FORMAT)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(human(v, column) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{human(k)}={human(v)}" for k, v in value.items())
    from kmsctl.text import escape

    # no tab or newline inside a cell, and no control character reaches the terminal
    return escape(" ".join(str(value).split()))


def _styled(column: str, text: str, color: bool) -> Text:
    if color and column in STATE_COLUMNS:
        return Text(text, style=STATE_STYLES.get(text, "dim"))
    return Text(text)  # Text: no rich markup in user data


def _items(value: Any, column: str = "") -> list[str]:
    """The unbreakable pieces of a value: a list's items, else the value."""
    if isinstance(value, (list, tuple)):
        return [human(v, column) for v in value]
    return [human(value, column)]


class _Column:
    def __init__(self, name: str, values: list[Any]) -> None:
        self.name = name
        self.cells = [human(v, name) for v in values]
        self.is_list = any(isinstance(v, (list, tuple)) for v in values)
        self.natural = max([len(name), *(len(c) for c in self.cells)])
        if name in FREE_TEXT:
            self.minimum = min(self.natural, max(len(name), FREE_TEXT_MIN))
        elif self.is_list:  # wraps after an item's comma, never inside the item
            pieces = [len(p) + 1 for v in values for p in _items(v, name)]
            self.minimum = min(self.natural, max([len(name), *pieces]))
        else:
            self.minimum = self.natural
        self.empty = not any(self.cells)


def layout(columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int) -> list[tuple[str, int]] | None:
    """The columns shown and their widths, or None: no table fits, print records."""
    cols = [_Column(name, [row[i] for row in rows]) for i, name in enumerate(columns)]
    droppable = [c for name in DROP_ORDER for c in cols if c.name == name]
    droppable += [c for c in cols if c.empty and c not in droppable]
    shown = list(cols)
    while True:
        room = width - GAP * (len(shown) - 1)
        if sum(c.minimum for c in shown) <= room:
            break
        candidates = [c for c in droppable if c in shown]
        if not candidates or len(shown) == 1:
            return None
        shown.remove(candidates[0])
    widths = {c.name: c.minimum for c in shown}
    spare = room - sum(widths.values())
    for c in shown:  # lists first, then free text, take what they need
        for want in (c.is_list, c.name in FREE_TEXT):
            if want and spare > 0:
                grow = min(spare, c.natural - widths[c.name])
                widths[c.name] += grow
                spare -= grow
    return [(c.name, widths[c.name]) for c in shown]


def render_table(
    console: Console, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, color: bool, title: str | None = None
) -> None:
    if not rows:
        console.print(Text("(none)"))
        return
    plan = layout(columns, rows, console.width)
    if plan is None:
        render_records(console, [list(zip(columns, row, strict=True)) for row in rows], color=color)
        return
    index = {name: i for i, name in enumerate(columns)}
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, GAP - 1, 0, 0),
        header_style="bold" if color else "",
    )
    for name, w in plan:
        free = name in FREE_TEXT
        table.add_column(name, width=w, no_wrap=free, overflow="ellipsis" if free else "fold")
    for row in rows:
        table.add_row(*(_styled(name, human(row[index[name]], name), color) for name, _ in plan))
    console.print(table)


def render_records(console: Console, records: Sequence[Sequence[tuple[str, Any]]], *, color: bool) -> None:
    """Each record as ``Field  value`` lines, blank lines between records.
    A value too long for its line starts on the next one; a list wraps
    between items; only free text wraps inside itself."""
    import textwrap

    width = console.width
    for n, pairs in enumerate(records):
        pairs = [(f, v) for f, v in pairs if v not in (None, "", [], ())]
        label_w = max((len(f) for f, _ in pairs), default=0) + GAP
        if n:
            console.print()
        for field, value in pairs:
            room = width - label_w
            pieces = _items(value, field)
            text = ", ".join(pieces)
            lines: list[str]
            if len(text) <= room:
                lines = [text]
            elif isinstance(value, (list, tuple)) and max(len(p) for p in pieces) < room:
                lines = _pack(pieces, room)
            elif isinstance(value, (list, tuple)):  # an item too long beside its label: below it
                console.print(Text(field), soft_wrap=True)
                for line in _pack(pieces, width - GAP):
                    indent = " " * GAP if len(line) <= width - GAP else ""
                    console.print(Text(indent) + _styled(field, line, color), soft_wrap=True)
                continue
            elif field in FREE_TEXT:
                lines = textwrap.wrap(text, max(room, FREE_TEXT_MIN)) or [""]
            else:  # an identifier: whole, on a line of its own (indented if it fits)
                indent = " " * GAP if len(text) <= width - GAP else ""
                console.print(Text(field), soft_wrap=True)
                console.print(Text(indent) + _styled(field, text, color), soft_wrap=True)
                continue
            for i, line in enumerate(lines):
                lead = Text(field.ljust(label_w) if i == 0 else " " * label_w)
                console.print(lead + _styled(field, line, color), soft_wrap=True)


def _pack(pieces: list[str], room: int) -> list[str]:
    """List items joined with ", " into lines of at most ``room``; an item
    longer than that gets a line of its own."""
    lines: list[str] = []
    line = ""
    for i, piece in enumerate(pieces):
        piece = piece + ("," if i < len(pieces) - 1 else "")
        candidate = f"{line} {piece}" if line else piece
        if line and len(candidate) > room:
            lines.append(line)
            line = piece
        else:
            line = candidate
    lines.append(line)
    return lines


def draw(app: App, columns: list[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    render_table(console_for(app), columns, rows, color=not app.no_color, title=title)


def draw_record(app: App, pairs: Sequence[tuple[str, Any]]) -> None:
    render_records(console_for(app), [pairs], color=not app.no_color)

"""The only place results are printed: ``json`` (AWS response shapes), ``text``
(tab-separated, one record a line, for scripts) and ``table`` (rich, for people).
rich is imported only when a table is actually drawn."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kmsctl.text import escape, json_safe

if TYPE_CHECKING:
    from kmsctl.cli.app import App


def _b64(value: bytes) -> str:
    import base64

    return base64.b64encode(value).decode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _b64(bytes(value))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(payload: Any) -> str:
    import json

    return json_safe(json.dumps(_jsonable(payload), indent=2, ensure_ascii=False)) + "\n"


def cell(value: Any) -> str:
    """One text cell: no tab or newline may break the record, and no control
    character reaches the terminal (kmsctl.text.escape)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return _b64(bytes(value))
    return escape(str(value))  # backslash, tab, newline, CR, and every other control character


def emit(
    app: App,
    payload: dict[str, Any],
    *,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    vertical: bool = False,
    table_columns: Sequence[str] | None = None,
    table_extra: Sequence[tuple[str, Any]] = (),
) -> None:
    """Print one result. ``rows`` under ``columns`` is the text and table form;
    ``vertical`` draws a single record as Field/value lines on a terminal, with
    ``table_extra`` fields after the columns; ``table_columns`` picks the
    columns a person sees (text keeps them all)."""
    mode = app.mode()
    if mode == "json":
        app.write_text(to_json(payload))
    elif mode == "text":
        app.write_text("".join("\t".join(cell(v) for v in row) + "\n" for row in rows))
    else:
        from kmsctl.render.table import draw, draw_record

        if vertical and rows:
            draw_record(app, [*zip(columns, rows[0], strict=True), *table_extra])
        else:
            shown = [i for i, c in enumerate(columns) if table_columns is None or c in table_columns]
            draw(app, [columns[i] for i in shown], [[row[i] for i in shown] for row in rows], title)


@contextmanager
def busy(app: App, message: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs, only when stderr is a
    terminal and -q is off; pipes and logs never see it."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty or app.quiet:
        yield
        return
    from rich.console import Console

    with Console(file=sys.stderr, color_system=None if app.no_color else "auto").status(message):
        yield

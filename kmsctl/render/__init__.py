"""The only place results are printed: ``json`` (AWS response shapes), ``text``
(tab-separated, one record a line, for scripts) and ``table`` (rich, for people).
rich is imported only when a table is actually drawn."""

from __future__ import annotations

from collections.abc import Sequence
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


def cell(value: Any, human: bool = False) -> str:
    """One text cell: no tab or newline may break the record, and no control
    character reaches the terminal (kmsctl.text.escape). ``human`` (tables)
    shortens times to the second and joins lists with ", "."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ") if human else value.isoformat()
    if isinstance(value, (list, tuple)):
        return (", " if human else ",").join(cell(v, human) for v in value)
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
) -> None:
    """Print one result. ``rows`` under ``columns`` is the text and table form;
    ``vertical`` draws a single record as Field/Value lines on a terminal, and
    ``table_columns`` picks the columns a person sees (text keeps them all)."""
    mode = app.mode()
    if mode == "json":
        app.write_text(to_json(payload))
    elif mode == "text":
        app.write_text("".join("\t".join(cell(v) for v in row) + "\n" for row in rows))
    else:
        from kmsctl.render.table import draw

        if vertical and rows:
            pairs = [(c, cell(v, True)) for c, v in zip(columns, rows[0], strict=True) if v not in (None, "")]
            draw(app, ["Field", "Value"], [list(p) for p in pairs], title)
        else:
            shown = [i for i, c in enumerate(columns) if table_columns is None or c in table_columns]
            draw(app, [columns[i] for i in shown], [[cell(row[i], True) for i in shown] for row in rows], title)

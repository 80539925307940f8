"""The only place results are printed: ``json`` (AWS response shapes), ``text``
(tab-separated, one record a line, for scripts) and ``table`` (rich, for people).
rich is imported only when a table is actually drawn."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

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

    return json.dumps(_jsonable(payload), indent=2, ensure_ascii=False) + "\n"


def cell(value: Any) -> str:
    """One text cell: no tab or newline may break the record."""
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
    text = str(value)
    if any(c in text for c in "\\\t\n\r"):
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def emit(
    app: App,
    payload: dict[str, Any],
    *,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    vertical: bool = False,
) -> None:
    """Print one result. ``rows`` under ``columns`` is the text and table form;
    ``vertical`` draws a single record as Field/Value lines on a terminal."""
    mode = app.mode()
    if mode == "json":
        app.write_text(to_json(payload))
    elif mode == "text":
        app.write_text("".join("\t".join(cell(v) for v in row) + "\n" for row in rows))
    else:
        from kmsctl.render.table import draw

        if vertical and rows:
            draw(app, ["Field", "Value"], [[c, cell(v)] for c, v in zip(columns, rows[0], strict=True)], title)
        else:
            draw(app, list(columns), [[cell(v) for v in row] for row in rows], title)

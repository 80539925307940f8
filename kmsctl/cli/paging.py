"""Whole listings, paged as the aws CLI pages them.

A listing fetches every page unless ``--max-items`` caps it; ``--page-size``
only changes how many items each call to the service fetches (the result is
the same); ``--starting-token`` continues from the token an earlier capped
listing printed. ``--limit`` and ``--marker``, kmsctl's first spelling, keep
their old meaning: one page of at most N, continued with ``--marker``.

The token is the service's own marker: a cap that falls inside a page asks
the service for a shorter last page, so the marker names exactly the next
item, and tokens and markers are interchangeable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click

if TYPE_CHECKING:
    from kmsctl.cli.app import App

F = TypeVar("F", bound=Callable[..., Any])


class Paging(NamedTuple):  # a NamedTuple: dataclasses costs start-up time
    max_items: int | None
    page_size: int | None
    token: str | None
    legacy: bool  # --limit/--marker: the old message names --marker
    one_page: bool = False  # --limit: a single call, as before


def paging_options(noun: str, page_max: int) -> Callable[[F], F]:
    """--max-items, --page-size, --starting-token, --limit, --marker; the
    command receives them as one ``paging`` argument."""

    def deco(fn: F) -> F:
        options = [
            click.option(
                "--max-items",
                type=click.IntRange(min=1),
                metavar="N",
                help=f"At most N {noun} in all; the token to continue is printed on stderr (text) "
                "or as NextToken (json). Default: every one.",
            ),
            click.option(
                "--page-size",
                type=int,
                metavar="N",
                help=f"{noun.capitalize()} fetched per call to the service (1-{page_max}); the output is the same.",
            ),
            click.option(
                "--starting-token",
                metavar="T",
                help="Continue from the NextToken (or NextMarker) of an earlier listing.",
            ),
            click.option(
                "--limit", type=int, metavar="N", help="One page of at most N (older spelling; see --max-items)."
            ),
            click.option("--marker", metavar="M", help="Continue from an earlier page's NextMarker (older spelling)."),
        ]
        for option in reversed(options):
            fn = option(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            limit, marker = kwargs.pop("limit"), kwargs.pop("marker")
            max_items, page_size, token = kwargs.pop("max_items"), kwargs.pop("page_size"), kwargs.pop("starting_token")
            if limit is not None and (max_items is not None or page_size is not None):
                raise click.UsageError("--limit is the older spelling of --max-items and --page-size: give one")
            if token is not None and marker is not None:
                raise click.UsageError("--marker is the older spelling of --starting-token: give one")
            legacy = limit is not None or marker is not None
            if limit is not None:
                max_items = page_size = limit  # one call, checked by the service as before
            kwargs["paging"] = Paging(max_items, page_size, token or marker, legacy, one_page=limit is not None)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def fetch(
    call: Callable[..., dict[str, Any]], field: str, paging: Paging, page_max: int, **args: Any
) -> tuple[list[Any], str | None]:
    """Every item ``call`` lists (or the first --max-items), and the token
    that continues after them (None when nothing follows)."""
    items: list[Any] = []
    marker = paging.token
    while True:
        limit = paging.page_size or page_max
        if paging.max_items is not None:
            limit = min(limit, paging.max_items - len(items))
        page = call(**args, Limit=limit, **({"Marker": marker} if marker else {}))
        items.extend(page[field])
        marker = page.get("NextMarker") if page.get("Truncated") else None
        if marker is None or paging.one_page or (paging.max_items is not None and len(items) >= paging.max_items):
            return items, marker


def finish(app: App, payload: dict[str, Any], next_token: str | None, noun: str, paging: Paging) -> dict[str, Any]:
    """The listing's json shape gets Truncated and, when capped, NextMarker and
    NextToken; text and table output say on stderr how to continue."""
    payload["Truncated"] = next_token is not None
    if next_token is not None:
        payload["NextMarker"] = payload["NextToken"] = next_token
        if app.mode() != "json":
            flag = "--marker" if paging.legacy else "--starting-token"
            app.info(f"kmsctl: more {noun} follow: {flag} {next_token}")
    return payload

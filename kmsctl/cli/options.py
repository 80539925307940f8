"""Option types and arguments shared by the command modules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

# INPUT: a file, or - (the default) for stdin
input_argument = click.argument(
    "input_path", metavar="[INPUT]", default="-", type=click.Path(dir_okay=False, allow_dash=True)
)


class AwsChoice(click.Choice):  # type: ignore[type-arg]
    """An AWS enum: typed in any case, shown and passed on as AWS spells it
    (click's own case-insensitive Choice shows the values in lower case)."""

    def __init__(self, choices: Iterable[str]) -> None:
        super().__init__(list(choices), case_sensitive=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            for choice in self.choices:
                if isinstance(choice, str) and choice.lower() == value.lower():
                    return choice
        return super().convert(value, param, ctx)

"""Audit commands: audit list, verify, export, prune."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import click

from kmsctl.cli.app import App
from kmsctl.cli.paging import Paging, fetch, finish, paging_options
from kmsctl.render import emit

LIST_COLUMNS = ["eventTime", "eventName", "KeyId", "errorCode", "userName", "eventID"]
_RELATIVE = re.compile(r"(\d+)([smhd])")
AUDIT_PAGE, AUDIT_PAGE_MAX = 1000, 100_000  # events per call by default, and at most


def parse_time(app: App, text: str, option: str) -> datetime:
    """ISO 8601 (2026-11-28, 2026-11-28T10:00:00Z; UTC unless it says
    otherwise) or an age before now (30s, 30m, 12h, 7d)."""
    m = _RELATIVE.fullmatch(text.strip())
    if m:
        from kmsctl.config import UNITS

        return datetime.fromtimestamp(app.clock() - int(m.group(1)) * UNITS[m.group(2)], UTC)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"expected a time like 2026-11-28T10:00:00Z or 7d, got {text!r}", param_hint=option
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _row(event: dict[str, Any]) -> list[Any]:
    resources = event.get("resources") or [{}]
    key_id = (resources[0].get("ARN") or "").rsplit("/", 1)[-1]
    who = (event.get("userIdentity") or {}).get("userName")
    return [event.get("eventTime"), event.get("eventName"), key_id, event.get("errorCode"), who, event.get("eventID")]


@click.group()
def audit() -> None:
    """The tamper-evident trail of every key operation, in CloudTrail's shape.

    Every operation, successful or failed, reads included, leaves a record:
    who, when, which key, which parameters (never plaintext, ciphertext, data
    keys, signatures, MACs or passphrases). Records are chained and
    authenticated, so 'audit verify' notices an edited, deleted, reordered,
    inserted or cut-off record. See docs/AUDIT.md.
    """


@audit.command("list")
@click.option("--key", "key", metavar="KEY", help="Only this key's events.")
@click.option("--event", "event", metavar="NAME", help="Only this operation (Encrypt, CreateKey, ...).")
@click.option("--since", metavar="T", help="From this time: ISO 8601, or an age like 7d.")
@click.option("--until", metavar="T", help="Up to this time: ISO 8601, or an age like 1h.")
@click.option("--errors", is_flag=True, help="Only failed operations.")
@paging_options("events", AUDIT_PAGE_MAX)
@click.pass_obj
def audit_list(
    app: App, key: str | None, event: str | None, since: str | None, until: str | None, errors: bool, paging: Paging
) -> None:
    """Events, newest first: all of them unless --max-items caps them
    (-o json: {"Events": [...], "Truncated": ..., "NextToken": ...}).

    Text columns: eventTime eventName KeyId errorCode userName eventID.
    """
    args: dict[str, Any] = {"ErrorsOnly": errors}
    if key:
        args["KeyId"] = key
    if event:
        args["EventName"] = event
    if since:
        args["StartTime"] = parse_time(app, since, "--since")
    if until:
        args["EndTime"] = parse_time(app, until, "--until")
    events, token = fetch(app.kms().audit_events, "Events", paging, AUDIT_PAGE, **args)
    out = finish(app, {"Events": events}, token, "events", paging)
    emit(
        app,
        out,
        columns=LIST_COLUMNS,
        rows=[_row(e) for e in events],
        table_columns=["eventTime", "eventName", "KeyId", "errorCode", "userName"],
    )


@audit.command("verify")
@click.pass_obj
def audit_verify(app: App) -> None:
    """Check the whole chain: exit 0, or 8 naming the first bad record.

    Text output: the number of records verified.
    """
    out = app.kms().audit_verify()
    app.info(f"kmsctl: audit trail verifies: {out['RecordsVerified']} records")
    if out["PendingUnauthenticated"]:
        app.warn(
            f"kmsctl: {out['PendingUnauthenticated']} record(s) of failures before unlock are not yet "
            "authenticated; the next unlocked command chains them"
        )
    emit(
        app,
        out,
        columns=["RecordsVerified", "PendingUnauthenticated"],
        rows=[[out["RecordsVerified"], out["PendingUnauthenticated"]]],
    )


@audit.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "cloudtrail"]),
    default="jsonl",
    show_default=True,
    help='jsonl: one record a line; cloudtrail: {"Records": [...]} like a CloudTrail log file.',
)
@click.pass_obj
def audit_export(app: App, fmt: str) -> None:
    """Every record, oldest first, after the chain verifies (exit 8 if not)."""
    import json

    records = app.kms().audit_export()
    from kmsctl.text import json_safe

    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def dumps(record: Any) -> str:
        return json_safe(encode(record))

    if fmt == "jsonl":
        for record in records:
            app.stdout.write((dumps(record) + "\n").encode())
    else:
        app.stdout.write(b'{"Records":[')
        for i, record in enumerate(records):
            app.stdout.write((("," if i else "") + dumps(record)).encode())
        app.stdout.write(b"]}\n")
    app.stdout.flush()


@audit.command("prune")
@click.option("--before", required=True, metavar="T", help="Drop records older than this: ISO 8601 or an age like 90d.")
@click.pass_obj
def audit_prune(app: App, before: str) -> None:
    """Drop old records and give their space back to the file system; what
    remains still verifies. Text output: how many were dropped."""
    out = app.kms().audit_prune(Before=parse_time(app, before, "--before"))
    app.info(f"kmsctl: pruned {out['RecordsDropped']} audit record(s)")
    emit(app, out, columns=["RecordsDropped"], rows=[[out["RecordsDropped"]]])

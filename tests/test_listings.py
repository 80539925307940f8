"""Whole listings (every page by default, as the aws CLI fetches them),
--max-items / --page-size / --starting-token, the older --limit / --marker,
and one audit record per user operation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import sql

from kmsctl.service import LocalKMS

N = 105  # more than one default page of ListKeys (100) and the largest of ListAliases (100)


@pytest.fixture
def many(kms: LocalKMS) -> list[str]:
    ids = []
    with kms.transaction():
        for i in range(N):
            key = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=f"alias/k{i:03d}", TargetKeyId=key)
            ids.append(key)
    return ids


def ids_of(text: str) -> list[str]:
    return [line.split("\t")[0] for line in text.splitlines()]


def token_of(stderr: str, flag: str = "--starting-token") -> str:
    m = re.search(rf"{flag} (\S+)", stderr)
    assert m, stderr
    return m.group(1)


def test_list_is_whole_through_the_real_binary(sub: Any, many: list[str]) -> None:
    proc = sub("-o", "text", "list")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == N
    assert sorted(ids_of(proc.stdout.decode())) == sorted(many)
    assert proc.stderr == b""


def test_every_listing_is_whole_by_default(cli: Any, many: list[str]) -> None:
    listed = json.loads(cli("-o", "json", "list").stdout)
    assert len(listed["Keys"]) == N and listed["Truncated"] is False and "NextToken" not in listed
    aliases = cli("-o", "text", "alias", "list")
    assert len(aliases.stdout.splitlines()) == N and aliases.stderr == ""
    events = json.loads(cli("-o", "json", "audit", "list").stdout)
    assert len(events["Events"]) >= 2 * N and events["Truncated"] is False


def test_max_items_caps_and_the_token_continues(cli: Any, many: list[str]) -> None:
    first = cli("-o", "text", "list", "--max-items", "10", "--page-size", "3")
    assert first.exit_code == 0 and len(first.stdout.splitlines()) == 10
    rest = cli("-o", "text", "list", "--starting-token", token_of(first.stderr))
    assert ids_of(first.stdout) + ids_of(rest.stdout) == ids_of(cli("-o", "text", "list").stdout)
    assert rest.stderr == ""
    quiet = cli("-q", "-o", "text", "list", "--max-items", "10")
    assert quiet.stderr == "" and len(quiet.stdout.splitlines()) == 10


def test_json_carries_the_next_token(cli: Any, many: list[str]) -> None:
    page = json.loads(cli("-o", "json", "list", "--max-items", "100").stdout)
    assert len(page["Keys"]) == 100 and page["Truncated"] is True
    assert page["NextToken"] == page["NextMarker"]
    rest = json.loads(cli("-o", "json", "list", "--starting-token", page["NextToken"]).stdout)
    assert len(rest["Keys"]) == N - 100 and rest["Truncated"] is False
    # a token and a marker are the same thing
    again = json.loads(cli("-o", "json", "list", "--marker", page["NextToken"], "--limit", "2").stdout)
    assert again["Keys"] == rest["Keys"][:2]


def test_page_size_does_not_change_the_output(cli: Any, many: list[str]) -> None:
    for args in (["list"], ["alias", "list"], ["audit", "list"]):
        whole = cli("-o", "json", *args).stdout
        assert cli("-o", "json", *args, "--page-size", "7").stdout == whole, args
    assert cli("list", "--page-size", "1001").exit_code == 2  # beyond ListKeys' largest Limit


def test_alias_list_past_the_largest_page(cli: Any, many: list[str]) -> None:
    first = cli("-o", "text", "alias", "list", "--max-items", "101")
    assert len(first.stdout.splitlines()) == 101
    rest = cli("-o", "text", "alias", "list", "--starting-token", token_of(first.stderr))
    names = ids_of(first.stdout) + ids_of(rest.stdout)
    assert names == [f"alias/k{i:03d}" for i in range(N)]


def test_audit_list_pages_newest_first_and_json_carries_its_marker(cli: Any, many: list[str]) -> None:
    whole = json.loads(cli("-o", "json", "audit", "list").stdout)["Events"]
    page = json.loads(cli("-o", "json", "audit", "list", "--max-items", "50").stdout)
    assert page["Events"] == whole[:50] and page["Truncated"] is True and page["NextMarker"] == page["NextToken"]
    rest = json.loads(cli("-o", "json", "audit", "list", "--starting-token", page["NextToken"]).stdout)
    assert [e["eventID"] for e in rest["Events"]] == [e["eventID"] for e in whole[50:]]
    text = cli("-o", "text", "audit", "list", "--max-items", "5")
    assert len(text.stdout.splitlines()) == 5 and "--starting-token" in text.stderr
    assert cli("audit", "list", "--starting-token", "not-a-token").exit_code == 2


def test_audit_pages_check_the_link_between_pages(cli: Any, many: list[str], keyring_home: Path) -> None:
    page = json.loads(cli("-o", "json", "audit", "list", "--max-items", "3").stdout)
    # the next page begins with the record just before the token's: cut that one out
    ((top,),) = sql(keyring_home, "SELECT max(seq) FROM audit")
    sql(keyring_home, "DELETE FROM audit WHERE seq = ?", top - 3)
    assert cli("audit", "list", "--starting-token", page["NextToken"]).exit_code == 8


def test_rotation_list_is_whole(cli: Any, kms: LocalKMS) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(25):
        kms.rotate_key_on_demand(KeyId=key)
    assert len(cli("-o", "text", "rotation", "list", key, "--page-size", "4").stdout.splitlines()) == 25
    first = cli("-o", "text", "rotation", "list", key, "--max-items", "3")
    assert len(first.stdout.splitlines()) == 3
    rest = cli("-o", "text", "rotation", "list", key, "--starting-token", token_of(first.stderr))
    assert len(rest.stdout.splitlines()) == 22


def test_the_older_spelling_keeps_its_meaning(cli: Any, many: list[str]) -> None:
    one = cli("-o", "text", "list", "--limit", "1")
    assert len(one.stdout.splitlines()) == 1
    rest = cli("-o", "text", "list", "--marker", token_of(one.stderr, "--marker"))
    assert len(rest.stdout.splitlines()) == N - 1
    assert cli("list", "--limit", "0").exit_code == 2
    assert cli("list", "--limit", "5", "--max-items", "5").exit_code == 2
    assert cli("list", "--marker", "x", "--starting-token", "y").exit_code == 2
    assert cli("list", "--max-items", "0").exit_code == 2


# ----- one operation, one record -----


def _records(home: Path) -> list[tuple[str, str | None]]:
    return [(name, error) for name, error in sql(home, "SELECT event_name, error_code FROM audit ORDER BY seq")]


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        ([], ["encrypt", "-k", "alias/sym", "-"], [("Encrypt", None)]),
        ([], ["encrypt", "-k", "alias/rsa", "-"], [("Encrypt", None)]),  # its default algorithm looked up
        ([], ["sign", "-k", "alias/sig", "-"], [("Sign", None)]),
        ([], ["hmac", "-k", "alias/mac", "-"], [("GenerateMac", None)]),
        ([], ["list"], [("ListKeys", None)]),
        ([], ["-o", "table", "list"], [("ListKeys", None)]),
        ([], ["-o", "table", "describe", "alias/sym"], [("DescribeKey", None)]),
        ([], ["describe", "alias/sym"], [("DescribeKey", None)]),
        ([], ["disable", "alias/sym"], [("DisableKey", None)]),
        ([], ["rotation", "list", "alias/sym"], [("ListKeyRotations", None)]),
        ([], ["tag", "list", "alias/sym"], [("ListResourceTags", None)]),
        ([], ["alias", "list", "--key", "alias/sym"], [("ListAliases", None)]),
        ([], ["rotate", "alias/sym"], [("RotateKeyOnDemand", None)]),
        # a lookup that fails ends the command: it is recorded
        ([], ["encrypt", "-k", "alias/none", "-"], [("DescribeKey", "NotFoundException")]),
    ],
)
def test_one_operation_is_one_record(
    cli: Any, kms: LocalKMS, keyring_home: Path, setup: list[str], args: list[str], expected: list[Any]
) -> None:
    for alias, spec, usage in (
        ("alias/sym", "SYMMETRIC_DEFAULT", None),
        ("alias/rsa", "RSA_2048", "ENCRYPT_DECRYPT"),
        ("alias/sig", "ECC_NIST_P256", "SIGN_VERIFY"),
        ("alias/mac", "HMAC_256", "GENERATE_VERIFY_MAC"),
    ):
        key = kms.create_key(KeySpec=spec, **({"KeyUsage": usage} if usage else {}))["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=alias, TargetKeyId=key)
    for _ in range(5):
        kms.create_key()
    before = len(_records(keyring_home))
    cli(*args, input=b"data")
    assert _records(keyring_home)[before:] == expected

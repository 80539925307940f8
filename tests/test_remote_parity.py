"""The same CLI cases on the local keyring and through --endpoint-url: the
same exit codes, and outputs of the same shape (the JSON members and their
types, the number of text columns a line). Each scenario runs twice, once
in-process on a local keyring, once against each ``remote_endpoint`` server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Result
from test_remote import aws_env, rcli, remote_endpoint  # noqa: F401 (fixtures)

pytest.importorskip("boto3", reason="the aws backend needs boto3 (pip install 'kmsctl[aws]')")

# a step: (args, input); "{alias}" and "{tmp}" are filled in, input "@NAME" is
# the stdout of the step saved as NAME (args ending in ">NAME" save it)
Step = tuple[list[str], "bytes | str | None"]

SCENARIOS: dict[str, list[Step]] = {
    "lifecycle": [
        (["create", "--alias", "{alias}", "--description", "parity", "-o", "json"], None),
        (["describe", "{alias}", "-o", "json"], None),
        (["describe", "{alias}", "-o", "text"], None),
        (["update-description", "{alias}", "new words"], None),
        (["disable", "{alias}"], None),
        (["encrypt", "-k", "{alias}"], b"x"),
        (["enable", "{alias}"], None),
        (["schedule-delete", "{alias}", "--days", "7", "-o", "json"], None),
        (["describe", "{alias}", "-o", "text"], None),
        (["cancel-delete", "{alias}"], None),
        (["describe", "alias/never-made-here"], None),
    ],
    "crypto": [
        (["create", "--alias", "{alias}", "-o", "text"], None),
        (["encrypt", "-k", "{alias}", "-c", "a=b", ">ct"], b"parity secret"),
        (["decrypt", "-c", "a=b"], "@ct"),
        (["decrypt", "-c", "a=c"], "@ct"),
        (["decrypt", "-o", "json", "-c", "a=b"], "@ct"),
        (["encrypt", "-k", "{alias}", "-o", "json"], b"x"),
        (["re-encrypt", "-k", "{alias}", "-o", "json", "--source-context", "a=b"], "@ct"),
        (["data-key", "-k", "{alias}", "-o", "json"], None),
        (["data-key", "-k", "{alias}", "--no-plaintext", "-o", "text"], None),
        (["data-key-pair", "-k", "{alias}", "--spec", "ECC_NIST_P256", "-o", "json"], None),
        (["decrypt"], b"not a ciphertext at all, not even close"),
        (["random", "32", "-o", "json"], None),
    ],
    "aliases-tags": [
        (["create", "--alias", "{alias}", "-o", "text"], None),
        (["alias", "create", "{alias}-2", "{alias}"], None),
        (["alias", "list", "--key", "{alias}", "-o", "json"], None),
        (["alias", "list", "--key", "{alias}", "-o", "text"], None),
        (["alias", "create", "{alias}-2", "{alias}"], None),
        (["alias", "delete", "{alias}-2"], None),
        (["tag", "add", "{alias}", "team=core"], None),
        (["tag", "list", "{alias}", "-o", "json"], None),
        (["tag", "list", "{alias}", "-o", "text"], None),
        (["tag", "remove", "{alias}", "team"], None),
    ],
    "rotation": [
        (["create", "--alias", "{alias}", "-o", "text"], None),
        (["rotation", "enable", "{alias}", "--period", "180"], None),
        (["rotation", "status", "{alias}", "-o", "json"], None),
        (["rotate", "{alias}", "-o", "json"], None),
        (["rotation", "list", "{alias}", "-o", "text"], None),
        (["rotation", "disable", "{alias}"], None),
    ],
    "sign-verify": [
        (["create", "--alias", "{alias}", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY"], None),
        (["sign", "-k", "{alias}", ">sig"], b"a message"),
        (["verify", "-k", "{alias}", "--signature", "{tmp}/sig", "-o", "json"], b"a message"),
        (["verify", "-k", "{alias}", "--signature", "{tmp}/sig"], b"another message"),
        (["public-key", "{alias}", "-o", "json"], None),
    ],
    "hmac": [
        (["create", "--alias", "{alias}", "--key-spec", "HMAC_256", "--key-usage", "GENERATE_VERIFY_MAC"], None),
        (["hmac", "-k", "{alias}", ">mac"], b"a message"),
        (["verify-mac", "-k", "{alias}", "--mac", "{tmp}/mac", "-o", "json"], b"a message"),
        (["verify-mac", "-k", "{alias}", "--mac", "{tmp}/mac"], b"another"),
    ],
    "grants-policies": [
        (["create", "--alias", "{alias}", "-o", "text"], None),
        (["grant", "create", "{alias}", "--grantee", "bob", "--operation", "Decrypt", "-o", "json"], None),
        (["grant", "list", "{alias}", "-o", "json"], None),
        (["policy", "list", "{alias}", "-o", "text"], None),
        (["policy", "get", "{alias}", "-o", "json"], None),
        (["policy", "get", "{alias}", "-o", "text", ">policy"], None),
        (["policy", "put", "{alias}", "{tmp}/policy"], None),
        (["policy", "put", "{alias}", "{tmp}/no-such-file"], None),
    ],
    "kem-ecdh": [
        (["create", "--alias", "{alias}", "--key-spec", "ML_KEM_768", "-o", "text"], None),
        (["encapsulate", "-k", "{alias}", "-o", "json"], None),
        (["decapsulate", "-k", "{alias}"], b"too short"),
        (["create", "--alias", "{alias}-e", "--key-spec", "ECC_NIST_P256", "--key-usage", "KEY_AGREEMENT"], None),
        (["public-key", "{alias}-e", ">peer"], None),
        (["derive-shared-secret", "-k", "{alias}-e", "--public-key", "{tmp}/peer", "-o", "json"], None),
    ],
    "seal": [
        (["create", "--alias", "{alias}", "-o", "text"], None),
        (["seal", "-k", "{alias}", "-c", "db=main", ">sealed"], b"sealed data\n" * 100),
        (["unseal"], "@sealed"),
        (["unseal", "-c", "db=other"], "@sealed"),
        (["inspect", "-o", "json"], "@sealed"),
    ],
}  # fmt: skip

# what moto's server does not do faithfully (the reason), by scenario
MOTO_DIVERGES = {
    "lifecycle": "moto encrypts under a disabled key",
    "rotation": "moto has no rotation periods or on-demand rotation history",
    "crypto": "moto's ciphertext is its own, and it lacks members (EncryptionAlgorithm)",
    "grants-policies": "moto's grants and policies differ in shape",
    "sign-verify": "moto answers SignatureValid false instead of an error, and fewer members",
    "hmac": "moto lacks members",
    "aliases-tags": "moto's aliases have no dates",
    "kem-ecdh": "moto has no ML-KEM keys",
}


def _shape(value: Any) -> Any:
    """The members and their kinds, not the values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "null" if value is None else type(value).__name__


def _observe(r: Result, args: list[str]) -> tuple[int, Any]:
    if r.exit_code != 0:
        return r.exit_code, r.stderr.split(":")[1].strip() if r.stderr.startswith("kmsctl: ") else r.stderr
    if "json" in args:
        return 0, _shape(json.loads(r.stdout))
    if "text" in args:
        return 0, [len(line.split("\t")) for line in r.stdout.splitlines()]
    return 0, bool(r.stdout_bytes)


def _play(invoke: Any, steps: list[Step], tmp: Path) -> list[tuple[int, Any]]:
    tmp.mkdir(parents=True, exist_ok=True)
    alias = f"alias/p-{uuid.uuid4().hex[:10]}"
    saved: dict[str, bytes] = {}
    seen = []
    for raw_args, raw_input in steps:
        save = raw_args[-1][1:] if raw_args[-1].startswith(">") else None
        args = [a.replace("{alias}", alias).replace("{tmp}", str(tmp)) for a in (raw_args[:-1] if save else raw_args)]
        data = saved[raw_input[1:]] if isinstance(raw_input, str) and raw_input.startswith("@") else raw_input
        r = invoke(*args, input=data)
        if save:
            saved[save] = r.stdout_bytes
            (tmp / save).write_bytes(r.stdout_bytes)
        seen.append(_observe(r, args))
    return seen


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_same_case_locally_and_remotely(
    scenario: str,
    cli: Any,
    rcli: Any,  # noqa: F811 (the fixture imported above)
    remote_endpoint: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    if remote_endpoint.kind == "moto" and scenario in MOTO_DIVERGES:
        pytest.skip(MOTO_DIVERGES[scenario])
    local = _play(cli, SCENARIOS[scenario], tmp_path / "local")
    remote = _play(rcli, SCENARIOS[scenario], tmp_path / "remote")
    for step, (mine, theirs) in enumerate(zip(local, remote, strict=True)):
        assert mine == theirs, f"step {step}: {SCENARIOS[scenario][step][0]}"

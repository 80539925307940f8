"""The remote backend: the same commands, outputs and exit codes against an
AWS KMS endpoint through boto3.

``remote_endpoint`` is parametrised by the server behind the URL: moto's
server now (for the operations it implements faithfully); ``kmsctl serve``
joins by itself once that command is in the build. Every case written against
``rcli``/``rsub`` runs against each of them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Result
from remote_support import (
    AWS_ENV,
    AWS_UNSET,
    REGION,
    Endpoint,
    free_port,
    run_binary,
    start_moto,
    start_serve,
    wait_until_up,
)

from kmsctl.cli import run

pytest.importorskip("boto3", reason="the aws backend needs boto3 (pip install 'kmsctl[aws]')")

# the servers the remote cases run against: add one here and every case runs on it
SERVERS = ["moto", "serve"]


@pytest.fixture(scope="module", params=SERVERS)
def remote_endpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    credentials: dict[str, str] = {}
    if request.param == "moto":  # no authentication: any credentials do
        proc = start_moto(port)
        probe = url + "/moto-api/"
    else:
        proc, credentials = start_serve(port, tmp_path_factory.mktemp("serve") / "home")
        probe = url + "/health"
    try:
        wait_until_up(proc, probe)
        yield Endpoint(request.param, url, credentials)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Test credentials and region, and a kmsctl home with no keyring in it."""
    for name in AWS_UNSET:
        monkeypatch.delenv(name, raising=False)
    env = {**AWS_ENV, "KMSCTL_HOME": str(tmp_path / "no-keyring")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def rcli(remote_endpoint: Endpoint, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """kmsctl in-process with --endpoint-url of the test server (and its credentials)."""
    for name, value in remote_endpoint.credentials.items():
        monkeypatch.setenv(name, value)
        aws_env[name] = value

    def invoke(*args: str, input: bytes | str | None = None, env: dict[str, str | None] | None = None) -> Result:
        runner = CliRunner()
        with runner.isolation(input=input, env=env) as (out, err, _):
            code = run(["--endpoint-url", remote_endpoint.url, *args])
        return Result(code, out.getvalue(), err.getvalue().decode())

    return invoke


@pytest.fixture
def rsub(remote_endpoint: Endpoint, aws_env: dict[str, str]) -> Any:
    """The real kmsctl binary, with --endpoint-url of the test server (and its credentials)."""

    def invoke(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        env = {**aws_env, **remote_endpoint.credentials}
        return run_binary(["--endpoint-url", remote_endpoint.url, *args], env, input)

    return invoke


def _alias() -> str:
    return f"alias/t-{uuid.uuid4().hex[:12]}"


def _key(rcli: Any, *extra: str) -> tuple[str, str]:
    alias = _alias()
    r = rcli("create", "--alias", alias, *extra, "-o", "json")
    assert r.exit_code == 0, r.stderr
    return alias, json.loads(r.stdout)["KeyMetadata"]["Arn"]


# ----- the operations -----
def test_create_describe_list_by_alias(rcli: Any) -> None:
    alias, arn = _key(rcli, "--description", "remote test")
    r = rcli("describe", alias, "-o", "json")
    assert r.exit_code == 0, r.stderr
    meta = json.loads(r.stdout)["KeyMetadata"]
    assert (meta["Arn"], meta["KeyState"], meta["Description"]) == (arn, "Enabled", "remote test")
    assert meta["CreationDate"].endswith("+00:00")  # UTC, as the local backend prints dates
    r = rcli("list", "-o", "text")
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    assert r.exit_code == 0
    assert [arn.rsplit("/", 1)[1], "Enabled", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", alias, "remote test"] in lines


def test_encrypt_decrypt_round_trip(rcli: Any) -> None:
    alias, arn = _key(rcli)
    enc = rcli("encrypt", "-k", alias, "-c", "app=web", input=b"remote secret\n")
    assert enc.exit_code == 0, enc.stderr
    dec = rcli("decrypt", "-c", "app=web", input=enc.stdout_bytes)
    assert (dec.exit_code, dec.stdout_bytes) == (0, b"remote secret\n")
    out = json.loads(rcli("encrypt", "-k", alias, "-o", "json", input=b"x").stdout)
    assert set(out) >= {"CiphertextBlob", "KeyId"} and out["KeyId"] == arn  # moto leaves out EncryptionAlgorithm


def test_aliases_and_tags(rcli: Any) -> None:
    alias, _ = _key(rcli)
    other = _alias()
    assert rcli("alias", "create", other, alias).exit_code == 0
    listed = rcli("alias", "list", "-o", "json").stdout
    assert other in [a["AliasName"] for a in json.loads(listed)["Aliases"]]
    assert rcli("alias", "delete", other).exit_code == 0
    assert rcli("tag", "add", alias, "team=core", "env=test").exit_code == 0
    assert sorted(rcli("tag", "list", alias, "-o", "text").stdout.splitlines()) == ["env\ttest", "team\tcore"]
    assert rcli("tag", "remove", alias, "env").exit_code == 0
    assert rcli("tag", "list", alias, "-o", "text").stdout.splitlines() == ["team\tcore"]


def test_data_key(rcli: Any) -> None:
    alias, arn = _key(rcli)
    out = json.loads(rcli("data-key", "-k", alias, "-o", "json").stdout)
    assert set(out) >= {"CiphertextBlob", "Plaintext", "KeyId"} and out["KeyId"] == arn
    dec = rcli("decrypt", input=base64.b64decode(out["CiphertextBlob"]))
    assert dec.stdout_bytes == base64.b64decode(out["Plaintext"])


def test_not_found_is_exit_3(rcli: Any) -> None:
    missing = rcli("describe", "alias/never-made-" + uuid.uuid4().hex[:8])
    assert missing.exit_code == 3 and missing.stderr.startswith("kmsctl: NotFoundException: ")
    assert len(missing.stderr.splitlines()) == 1


def test_key_state_errors(rcli: Any, remote_endpoint: Endpoint) -> None:
    if remote_endpoint.kind == "moto":
        pytest.skip("moto encrypts under a disabled key")
    alias, _ = _key(rcli)
    assert rcli("disable", alias).exit_code == 0
    disabled = rcli("encrypt", "-k", alias, input=b"x")
    assert disabled.exit_code == 4 and "DisabledException" in disabled.stderr
    assert len(disabled.stderr.splitlines()) == 1


def test_seal_unseal_inspect_through_the_binary(rsub: Any, rcli: Any, tmp_path: Path) -> None:
    alias, arn = _key(rcli)
    sealed = tmp_path / "data.sealed"
    made = rsub("seal", "-k", alias, "-c", "db=main", "--out", str(sealed), input=b"sealed remotely\n" * 1000)
    assert made.returncode == 0, made.stderr
    shown = rsub("inspect", str(sealed), "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert arn in shown.stdout.decode()  # the remote key's ARN is in the header
    back = rsub("unseal", str(sealed))
    assert (back.returncode, back.stdout) == (0, b"sealed remotely\n" * 1000)
    wrong = rsub("unseal", "-c", "db=other", str(sealed))
    assert wrong.returncode == 6 and wrong.stdout == b""


def test_status_says_backend_endpoint_region_identity(rcli: Any, remote_endpoint: Endpoint) -> None:
    out = json.loads(rcli("status", "-o", "json").stdout)
    assert out == {
        "Backend": "aws",
        "Endpoint": remote_endpoint.url,
        "Region": REGION,
        "Profile": "default",
        "AccessKeyId": remote_endpoint.credentials.get("AWS_ACCESS_KEY_ID", AWS_ENV["AWS_ACCESS_KEY_ID"]),
        "CredentialSource": "env",
    }


# ----- the short path (kmsctl.backends.fast) against the botocore client -----
@pytest.fixture
def profile_env(
    remote_endpoint: Endpoint, aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A profile with the same credentials: --profile takes the botocore client."""
    credentials = {**AWS_ENV, **remote_endpoint.credentials}
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile t]\naws_access_key_id = {credentials['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {credentials['AWS_SECRET_ACCESS_KEY']}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return {**aws_env, "AWS_CONFIG_FILE": str(config)}


def test_the_short_path_answers_as_the_botocore_client(rcli: Any, profile_env: dict[str, str]) -> None:
    alias, _ = _key(rcli, "--description", "both paths")
    args = ["describe", alias, "-o", "json"]
    assert json.loads(rcli(*args).stdout) == json.loads(rcli("--profile", "t", *args).stdout)  # members in any order
    args = ["describe", alias, "-o", "text"]
    assert rcli(*args).stdout == rcli("--profile", "t", *args).stdout
    short = rcli("encrypt", "-k", alias, input=b"either way")
    full = rcli("--profile", "t", "encrypt", "-k", alias, input=b"either way")
    assert rcli("--profile", "t", "decrypt", input=short.stdout_bytes).stdout_bytes == b"either way"
    assert rcli("decrypt", input=full.stdout_bytes).stdout_bytes == b"either way"
    for args in (["data-key", "-k", alias, "-o", "json"], ["random", "16", "-o", "json"]):
        a, b = json.loads(rcli(*args).stdout), json.loads(rcli("--profile", "t", *args).stdout)
        assert {k: type(v) for k, v in a.items()} == {k: type(v) for k, v in b.items()}
    missing = ["describe", "alias/never-" + uuid.uuid4().hex[:8]]
    one, two = rcli(*missing), rcli("--profile", "t", *missing)
    assert (one.exit_code, one.stderr) == (two.exit_code, two.stderr) == (3, one.stderr)


def test_the_short_path_leaves_the_botocore_client_unloaded(remote_endpoint: Endpoint, aws_env: dict[str, str]) -> None:
    script = (
        "import sys, json\nfrom kmsctl.cli import run\n"
        f"rc = run(['--endpoint-url', {remote_endpoint.url!r}, 'random', '8', '-o', 'json'])\n"
        "sys.stderr.write(json.dumps([rc, 'botocore.client' in sys.modules, 'botocore.auth' in sys.modules]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KMSCTL_", "AWS_"))}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**env, **aws_env, **remote_endpoint.credentials},
        timeout=60,
        check=False,
    )
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == [0, False, True]


def test_a_wrong_secret_is_one_line_exit_5(remote_endpoint: Endpoint, aws_env: dict[str, str]) -> None:
    if remote_endpoint.kind == "moto":
        pytest.skip("moto accepts any signature")
    env = {**aws_env, **remote_endpoint.credentials, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    for args in (["list"], ["describe", "alias/x"]):  # the botocore client; the short path
        start = time.monotonic()
        proc = run_binary(["--endpoint-url", remote_endpoint.url, *args], env)
        assert time.monotonic() - start < 5
        err = proc.stderr.decode()
        assert proc.returncode == 5 and len(err.splitlines()) == 1, err
        assert err.startswith("kmsctl: InvalidSignatureException: "), err

"""The remote backend without a server: how it is chosen, what it refuses,
how it fails (dead endpoint, no credentials, no region), the error mapping,
and that the local backend never loads boto3."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from remote_support import AWS_ENV, free_port, run_binary
from test_completion import complete, keys, session  # noqa: F401 (keys, session: fixtures)

pytest.importorskip("boto3", reason="the aws backend needs boto3 (pip install 'kmsctl[aws]')")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**AWS_ENV, "KMSCTL_HOME": str(tmp_path / "no-keyring")}


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused


def _one_line_failure(proc: subprocess.CompletedProcess[bytes], code: int, name: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert len(err.splitlines()) == 1 and err.startswith(f"kmsctl: {name}: "), err
    assert "Traceback" not in err
    return err


def test_a_dead_endpoint_is_one_line_exit_69_within_5s(env: dict[str, str]) -> None:
    url = _dead_url()
    start = time.monotonic()
    proc = run_binary(["--endpoint-url", url, "encrypt", "-k", "alias/x"], env, input=b"x")
    assert time.monotonic() - start < 5
    err = _one_line_failure(proc, 69, "EndpointUnavailable")
    assert url in err and proc.stdout == b""


def test_missing_credentials_is_exit_5(env: dict[str, str]) -> None:
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    start = time.monotonic()
    proc = run_binary(["--endpoint-url", _dead_url(), "list"], env)
    assert time.monotonic() - start < 5
    _one_line_failure(proc, 5, "MissingCredentials")


def test_an_unknown_profile_is_exit_5(env: dict[str, str]) -> None:
    proc = run_binary(["--endpoint-url", _dead_url(), "--profile", "nobody", "list"], env)
    assert "nobody" in _one_line_failure(proc, 5, "MissingCredentials")


def test_missing_region_is_exit_2(env: dict[str, str]) -> None:
    del env["AWS_REGION"]
    start = time.monotonic()
    proc = run_binary(["--endpoint-url", _dead_url(), "list"], env)
    assert time.monotonic() - start < 5
    assert "--region" in _one_line_failure(proc, 2, "MissingRegion")


@pytest.mark.parametrize(
    "args",
    [
        ["init"],
        ["unlock"],
        ["lock"],
        ["passwd"],
        ["check"],
        ["maintain"],
        ["audit", "list"],
        ["principal", "list"],
        ["policy", "reset", "alias/x"],
    ],
    ids=" ".join,
)
def test_local_only_commands_refuse_on_the_aws_backend(cli: Any, env: dict[str, str], args: list[str]) -> None:
    r = cli("--endpoint-url", _dead_url(), *args, env=env)  # refused before any request is made
    assert r.exit_code == 2, r.stderr
    assert r.stderr.startswith("kmsctl: UsageError: kmsctl ") and "local keyring only" in r.stderr
    assert len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("option", [["--principal", "alice"], ["--read-only"]], ids=lambda o: o[0])
def test_local_options_are_refused_on_the_aws_backend(cli: Any, env: dict[str, str], option: list[str]) -> None:
    r = cli("--backend", "aws", *option, "list", env=env)
    assert r.exit_code == 2 and f"{option[0]} works on the local keyring only" in r.stderr


def test_selection_by_environment_config_and_flag(cli: Any, env: dict[str, str], keyring_home: Path) -> None:
    url = _dead_url()
    # an endpoint URL in the environment implies aws
    r = cli("list", env={**env, "KMSCTL_HOME": str(keyring_home), "KMSCTL_ENDPOINT_URL": url})
    assert r.exit_code == 69 and url in r.stderr
    # --backend local beats it: the local keyring answers
    r = cli("--backend", "local", "list", env={**env, "KMSCTL_HOME": str(keyring_home), "KMSCTL_ENDPOINT_URL": url})
    assert r.exit_code == 0, r.stderr
    # config.toml, shown with its origin
    (keyring_home / "config.toml").write_text(f'backend = "aws"\nendpoint_url = "{url}"\nregion = "eu-west-3"\n')
    r = cli("config", "list", "--origin", "-o", "json", env={"KMSCTL_HOME": str(keyring_home)})
    rows = {row["Key"]: row for row in json.loads(r.stdout)["Settings"]} if r.exit_code == 0 else {}
    assert r.exit_code == 0, r.stderr
    assert (rows["backend"]["Value"], rows["backend"]["Origin"]) == ("aws", "config")
    assert (rows["endpoint_url"]["Value"], rows["endpoint_url"]["Origin"]) == (url, "config")
    r = cli(
        "--region", "ap-south-1", "config", "list", "--origin", "-o", "json", env={"KMSCTL_HOME": str(keyring_home)}
    )
    rows = {row["Key"]: row for row in json.loads(r.stdout)["Settings"]}
    assert (rows["region"]["Value"], rows["region"]["Origin"]) == ("ap-south-1", "flag")
    # the region: flag > AWS_REGION > config.toml
    r = cli("status", "-o", "json", env={**env, "KMSCTL_HOME": str(keyring_home)})
    assert json.loads(r.stdout)["Region"] == "us-east-1"
    r = cli("status", "-o", "json", env={**env, "KMSCTL_HOME": str(keyring_home), "AWS_REGION": None})
    assert json.loads(r.stdout)["Region"] == "eu-west-3"


def test_a_bad_endpoint_url_is_exit_2(cli: Any, env: dict[str, str]) -> None:
    r = cli("--endpoint-url", "ftp://nowhere", "list", env=env)
    assert r.exit_code == 2 and "--endpoint-url" in r.stderr


# ----- the error mapping -----
def _client_error(code: str, status: int, message: str = "m") -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "status", "exit_code"),
    [
        ("NotFoundException", 400, 3),
        ("DisabledException", 400, 4),
        ("AccessDeniedException", 400, 5),
        ("UnrecognizedClientException", 400, 5),
        ("InvalidSignatureException", 400, 5),
        ("ExpiredTokenException", 400, 5),
        ("IncompleteSignatureException", 400, 5),
        ("InvalidCiphertextException", 400, 6),
        ("AlreadyExistsException", 400, 7),
        ("KMSInternalException", 500, 69),
        ("DependencyTimeoutException", 503, 69),
        ("KeyUnavailableException", 500, 69),
        ("ThrottlingException", 400, 69),
        ("500", 500, 69),  # an HTML error page
        ("SomeNewException", 400, 2),
        ("SomeNewException", 403, 5),
    ],
)
def test_endpoint_errors_map_to_exit_codes(code: str, status: int, exit_code: int) -> None:
    from kmsctl.backends.aws import map_error

    mapped = map_error(_client_error(code, status), "http://e")
    assert mapped is not None and mapped.exit_code == exit_code
    assert mapped.code == (code if not code.isdigit() else "KMSInternalException")


def test_connection_errors_map_to_69_and_name_the_endpoint() -> None:
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    from kmsctl.backends.aws import map_error

    for exc in (
        EndpointConnectionError(endpoint_url="http://e:1"),
        ConnectTimeoutError(endpoint_url="http://e:1"),
        ReadTimeoutError(endpoint_url="http://e:1"),
    ):
        mapped = map_error(exc, "http://e:1")
        assert mapped is not None and (mapped.code, mapped.exit_code) == ("EndpointUnavailable", 69)
        assert "http://e:1" in mapped.message


# ----- the local backend never pays for boto3 -----
def _modules_after(code: str, env: dict[str, str]) -> list[str]:
    script = (
        "import sys, json\nfrom kmsctl.cli import run\n"
        + code
        + "\nsys.stderr.write(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore'})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    return list(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_help_and_local_encrypt_never_import_boto3(keyring_home: Path, passfile: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    env.update({"KMSCTL_HOME": str(keyring_home), "KMSCTL_PASSPHRASE_FILE": str(passfile)})
    assert _modules_after("assert run(['--help']) == 0", env) == []
    local = (
        "import io, os\n"
        "assert run(['create', '--alias', 'alias/a', '-q']) == 0\n"
        "r, w = os.pipe(); os.write(w, b'x'); os.close(w); os.dup2(r, 0)\n"
        "sys.stdout = io.TextIOWrapper(io.BytesIO())\n"
        "assert run(['encrypt', '-k', 'alias/a']) == 0\n"
    )
    assert _modules_after(local, env) == []
    # and the check can fail: the aws backend does import it
    assert "botocore" in _modules_after("run(['--endpoint-url', 'http://127.0.0.1:9', 'list'])", {**env, **AWS_ENV})


def test_the_backends_import_neither_click_nor_rich() -> None:
    import ast

    import kmsctl.backends

    for path in Path(kmsctl.backends.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in names if m.split(".")[0] in {"click", "rich"}}, path


# ----- completion: key names are not offered on the aws backend -----
def test_key_names_are_not_completed_on_the_aws_backend(sub: Any, request: pytest.FixtureRequest) -> None:
    env = {"KMSCTL_SESSION": request.getfixturevalue("session")}  # a keyring with alias/app and alias/backup
    assert complete(sub, "kmsctl describe alias/", env)[0] == ["alias/app", "alias/backup"]  # the local keyring's
    for line, extra in (
        ("kmsctl --endpoint-url http://127.0.0.1:9 describe alias/", {}),
        ("kmsctl --backend aws describe alias/", {}),
        ("kmsctl describe alias/", {"KMSCTL_ENDPOINT_URL": "http://127.0.0.1:9"}),
        ("kmsctl describe alias/", {"KMSCTL_BACKEND": "aws"}),
    ):
        got, stderr, _ = complete(sub, line, {**env, **extra})
        assert (got, stderr) == ([], b""), line


def test_the_botocore_client_path_fails_the_same_way(env: dict[str, str], tmp_path: Path) -> None:
    """--profile takes the botocore client rather than the short path: a dead endpoint is the same line."""
    config = tmp_path / "aws-config"
    config.write_text("[profile t]\naws_access_key_id = AKIAKMSCTLTEST000002\naws_secret_access_key = s\n")
    url = _dead_url()
    start = time.monotonic()
    proc = run_binary(
        ["--endpoint-url", url, "--profile", "t", "encrypt", "-k", "alias/x"],
        {**env, "AWS_CONFIG_FILE": str(config)},
        input=b"x",
    )
    assert time.monotonic() - start < 5
    assert url in _one_line_failure(proc, 69, "EndpointUnavailable")


def test_the_short_path_codec_matches_botocores_model() -> None:
    """Each operation the short path takes: its blob and timestamp members, and
    whether it takes GrantTokens and DryRun, are those of botocore's KMS model."""
    import botocore.session

    from kmsctl.backends.fast import OPERATIONS

    model = botocore.session.get_session().get_service_model("kms")

    def members(shape: Any, kind: str, path: str = "") -> set[str]:
        if shape.type_name == "structure":
            return {m for name, sub in shape.members.items() for m in members(sub, kind, f"{path}{name}.")}
        return {path.rstrip(".")} if shape.type_name == kind else set()

    for name, op in OPERATIONS.items():
        operation = model.operation_model(op.api)
        assert model.operation_model(op.api).name == op.api and name == botocore.xform_name(op.api)
        assert op.blobs == members(operation.output_shape, "blob"), name
        assert op.timestamps == members(operation.output_shape, "timestamp"), name
        assert op.grant_tokens == ("GrantTokens" in operation.input_shape.members), name
        assert op.dry_run == ("DryRun" in operation.input_shape.members), name


def test_the_short_path_reads_aws_errors_and_pages_that_are_not() -> None:
    from kmsctl.backends.aws import client_error
    from kmsctl.backends.fast import _error

    assert _error(b'{"__type": "com.amazonaws.kms#NotFoundException", "message": "gone"}') == (
        "NotFoundException",
        "gone",
    )
    assert _error(b'{"__type": "NotFoundException:http://internal", "Message": "x"}') == ("NotFoundException", "x")
    assert _error(b"<html>500 Internal Server Error</html>") == ("", "")
    page = client_error("", "", 502, "http://e")
    assert (page.code, page.exit_code) == ("KMSInternalException", 69) and "HTTP 502" in page.message

"""Bad input from outside, through the real binary: arguments and environment
that are not UTF-8, config files that are not files, inputs beyond every limit,
a defect inside an operation, control characters on the way to a terminal,
and AWS's exact validation of aliases, blob lengths and base64."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE

SURROGATE_FF = "\udcff"  # what Python makes of a byte 0xFF in argv or the environment
SURROGATE_E9 = "\udce9"


def one_error(proc: subprocess.CompletedProcess[bytes], code: int, name: str) -> str:
    """The process failed with ``code`` and said so in one line naming ``name``."""
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kmsctl: {name}: "), err
    return lines[0]


def events(sub: Any, name: str) -> list[dict[str, Any]]:
    proc = sub("-o", "json", "audit", "list", "--event", name)
    assert proc.returncode == 0, proc.stderr
    out: list[dict[str, Any]] = json.loads(proc.stdout)["Events"]
    return out


@pytest.fixture
def key(sub: Any) -> str:
    proc = sub("-o", "text", "create", "--alias", "alias/app")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


# ----- arguments and environment that are not UTF-8 -----
@pytest.mark.parametrize(
    ("args", "operation", "field"),
    [
        (["describe", "alias/" + SURROGATE_FF], "DescribeKey", "keyId"),
        (["create", "--description", "caf" + SURROGATE_E9], "CreateKey", "description"),
        (["encrypt", "-k", "alias/app", "-c", SURROGATE_FF + "=1"], "Encrypt", "encryptionContext"),
        (["alias", "create", "alias/caf" + SURROGATE_E9, "{key}"], "CreateAlias", "aliasName"),
        (["tag", "add", "{key}", "team=caf" + SURROGATE_E9], "TagResource", "tags"),
    ],
    ids=["describe", "create-description", "encrypt-context", "alias-create", "tag-add"],
)
def test_non_utf8_argument_is_one_error_and_audited(
    sub: Any, key: str, args: list[str], operation: str, field: str
) -> None:
    proc = sub(*[a.replace("{key}", key) for a in args], input=b"secret")
    line = one_error(proc, 2, "ValidationException")
    assert f"Value at '{field}'" in line and "not UTF-8" in line
    failed = [e for e in events(sub, operation) if e.get("errorCode") == "ValidationException"]
    assert failed, f"no failed {operation} record"
    # the record keeps the bad bytes visibly, escaped, and is valid JSON text
    assert "\\udc" in json.dumps(failed[0]["requestParameters"], ensure_ascii=False)


def test_non_utf8_passphrase_in_environment_is_one_error(sub: Any, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    proc = sub("init", env={"KMSCTL_HOME": str(fresh), "KMSCTL_PASSPHRASE_FILE": "", "KMSCTL_PASSPHRASE": "\udcff"})
    assert "KMSCTL_PASSPHRASE" in one_error(proc, 2, "ValidationException")
    assert not (fresh / "keyring.db").exists()


def test_non_utf8_passphrase_on_an_operation_is_audited(sub: Any, key: str) -> None:
    proc = sub("describe", key, env={"KMSCTL_PASSPHRASE_FILE": "", "KMSCTL_PASSPHRASE": "\udcffx"})
    one_error(proc, 2, "ValidationException")
    failed = [e for e in events(sub, "DescribeKey") if e.get("errorCode") == "ValidationException"]
    assert failed and "KMSCTL_PASSPHRASE" in failed[0]["errorMessage"]


def test_non_utf8_home_path_is_written_back_as_its_bytes(sub: Any, tmp_path: Path) -> None:
    home = os.path.join(str(tmp_path), "h\udcff")
    proc = sub("-o", "text", "init", "--no-passphrase", env={"KMSCTL_HOME": home, "KMSCTL_PASSPHRASE_FILE": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == os.fsencode(home) + b"\n"


def test_non_utf8_config_value_is_refused(sub: Any, keyring_home: Path) -> None:
    one_error(sub("config", "set", "seal.key", "alias/" + SURROGATE_FF), 2, "ValidationException")
    assert not (keyring_home / "config.toml").exists()


# ----- config.toml that is not a small regular file -----
def _broken_config(sub: Any, home: Path) -> str:
    proc = sub("config", "get", "output", timeout=20)
    line = one_error(proc, 2, "ValidationException")
    assert str(home / "config.toml") in line
    return line


def test_deeply_nested_config_is_one_error(sub: Any, keyring_home: Path) -> None:
    (keyring_home / "config.toml").write_text("a = " + "[" * 1000 + "]" * 1000 + "\n")
    assert "nested too deeply" in _broken_config(sub, keyring_home)


def test_config_fifo_does_not_hang(sub: Any, keyring_home: Path) -> None:
    os.mkfifo(keyring_home / "config.toml")
    assert "not a regular file" in _broken_config(sub, keyring_home)


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom"])
def test_config_link_to_a_device_does_not_hang(sub: Any, keyring_home: Path, target: str) -> None:
    (keyring_home / "config.toml").symlink_to(target)
    assert "not a regular file" in _broken_config(sub, keyring_home)


def test_config_directory_and_oversized_file(sub: Any, keyring_home: Path) -> None:
    (keyring_home / "config.toml").mkdir()
    assert "not a regular file" in _broken_config(sub, keyring_home)
    (keyring_home / "config.toml").rmdir()
    (keyring_home / "config.toml").write_bytes(b"#" * ((1 << 20) + 1))
    assert "larger than 1 MiB" in _broken_config(sub, keyring_home)


def test_config_link_to_a_regular_file_still_works(sub: Any, keyring_home: Path, tmp_path: Path) -> None:
    real = tmp_path / "managed.toml"
    real.write_text("color = false\n")
    (keyring_home / "config.toml").symlink_to(real)
    proc = sub("-o", "text", "config", "get", "color")
    assert (proc.returncode, proc.stdout) == (0, b"false\n")


# ----- every file read is bounded -----
@pytest.mark.parametrize(
    ("args", "member", "limit"),
    [
        (["encrypt", "-k", "alias/app", "/dev/zero"], "plaintext", 4096),
        (["decrypt", "/dev/zero"], "ciphertextBlob", 6144),
        (["sign", "-k", "alias/sig", "/dev/zero"], "message", 4096),
        (["verify", "-k", "alias/sig", "--signature", "/dev/zero", "{empty}"], "signature", 6144),
        (["verify-mac", "-k", "alias/mac", "--mac", "/dev/zero", "{empty}"], "mac", 6144),
        (["derive-shared-secret", "-k", "alias/app", "--public-key", "/dev/zero"], "publicKey", 8192),
    ],
    ids=["encrypt", "decrypt", "sign", "verify", "verify-mac", "derive-shared-secret"],
)
def test_endless_input_fails_fast_with_aws_length_message(
    sub: Any, key: str, tmp_path: Path, args: list[str], member: str, limit: int
) -> None:
    for spec, usage, alias in (("ECC_NIST_P256", "SIGN_VERIFY", "sig"), ("HMAC_256", "GENERATE_VERIFY_MAC", "mac")):
        assert sub("create", "--key-spec", spec, "--key-usage", usage, "--alias", f"alias/{alias}").returncode == 0
    (tmp_path / "m").write_bytes(b"m")
    proc = sub(*[a.replace("{empty}", str(tmp_path / "m")) for a in args], timeout=20)
    line = one_error(proc, 2, "ValidationException")
    assert (  # a hint may follow
        f"ValidationException: 1 validation error detected: Value at '{member}' failed to satisfy constraint: "
        f"Member must have length less than or equal to {limit}"
    ) in line


@pytest.mark.parametrize(
    ("args", "member"),
    [(["encrypt", "-k", "alias/app"], "plaintext"), (["decrypt"], "ciphertextBlob")],
    ids=["encrypt", "decrypt"],
)
def test_empty_blob_has_aws_length_message(sub: Any, key: str, args: list[str], member: str) -> None:
    line = one_error(sub(*args, input=b""), 2, "ValidationException")
    assert (
        f"Value at '{member}' failed to satisfy constraint: Member must have length greater than or equal to 1"
    ) in line


# ----- a defect inside an operation is still recorded -----
def test_unexpected_error_inside_an_operation_is_audited(cli: Any, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kmsctl.service.base import LocalKMSBase

    def broken(self: Any, doc: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("secret-looking detail")

    monkeypatch.setattr(LocalKMSBase, "_metadata", broken)
    result = cli("describe", key)
    assert result.exit_code == 70
    assert result.stderr.startswith("kmsctl: InternalError: RuntimeError")
    monkeypatch.undo()
    out = json.loads(cli("-o", "json", "audit", "list", "--event", "DescribeKey").stdout)["Events"]
    assert out[0]["errorCode"] == "KMSInternalException"
    assert out[0]["errorMessage"] == "internal error (RuntimeError)"  # the type, never the text
    assert cli("audit", "verify").exit_code == 0


# ----- control characters never reach the terminal raw -----
ESC_TEXT = "\x1b[2J\x1b]0;owned\x07\x9b31m\x7fend"


def _no_raw_controls(data: bytes) -> None:
    text = data.decode()
    bad = [c for c in text if (ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F]
    assert not bad, f"raw control characters {bad!r} in {text!r}"


def _crafted_sealed(tmp_path: Path, key_id: str, context: dict[str, str]) -> Path:
    """A sealed file whose (unauthenticated) header says what an attacker likes."""
    from kmsctl.crypto import sealed_header as sh

    fields = {
        "Algorithm": sh.ALGORITHM,
        "ChunkSize": sh.CHUNK_SIZE,
        "EncryptedDataKey": base64.b64encode(b"\xa9" * 100).decode(),
        "EncryptionContext": context,
        "KeyId": key_id,
        "Salt": base64.b64encode(b"s" * 32).decode(),
    }
    raw = sh.canonical_json(fields)
    path = tmp_path / "crafted.sealed"
    body = bytes(16)  # one empty final chunk: its tag only
    path.write_bytes(sh.MAGIC + bytes([sh.VERSION]) + struct.pack(">I", len(raw)) + raw + bytes(64) + body)
    return path


@pytest.mark.parametrize("mode", ["text", "table", "json"])
def test_inspect_escapes_header_fields(sub: Any, tmp_path: Path, mode: str) -> None:
    path = _crafted_sealed(tmp_path, ESC_TEXT, {"k\x1b": ESC_TEXT})
    proc = sub("--no-color", "-o", mode, "inspect", str(path))
    assert proc.returncode == 0, proc.stderr
    _no_raw_controls(proc.stdout)
    if mode == "json":
        assert json.loads(proc.stdout)["KeyId"] == ESC_TEXT  # escaped, not altered
    elif mode == "text":
        assert proc.stdout.decode().split("\t")[0] == "\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\x7fend"


@pytest.mark.parametrize("mode", ["text", "table", "json"])
def test_table_text_and_json_cells_escape_controls(sub: Any, mode: str) -> None:
    key = sub("-o", "text", "create", "--description", ESC_TEXT).stdout.decode().strip()
    for args in (["describe", key], ["list"]):
        proc = sub("--no-color", "-o", mode, *args)
        assert proc.returncode == 0, proc.stderr
        _no_raw_controls(proc.stdout)
        assert b"2J" in proc.stdout
    if mode == "json":
        assert json.loads(sub("-o", "json", "describe", key).stdout)["KeyMetadata"]["Description"] == ESC_TEXT


def test_error_messages_and_audit_list_escape_controls(sub: Any) -> None:
    proc = sub("describe", "alias/\x1b[2Jx")
    assert proc.returncode == 3
    _no_raw_controls(proc.stderr)
    assert "alias/\\x1b[2Jx" in proc.stderr.decode()
    for mode in ("text", "table", "json"):
        out = sub("--no-color", "-o", mode, "audit", "list")
        assert out.returncode == 0, out.stderr
        _no_raw_controls(out.stdout)
    exported = sub("audit", "export")
    _no_raw_controls(exported.stdout)
    assert "\\u001b[2Jx" in exported.stdout.decode()


# ----- AWS's validation -----
def test_alias_without_prefix_is_aws_validation_exception(sub: Any, key: str) -> None:
    line = one_error(sub("alias", "create", "app", key), 2, "ValidationException")
    assert line.endswith(
        'Alias must start with the prefix "alias/". Please see '
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
    )


def test_alias_with_colon_is_refused(sub: Any, key: str) -> None:
    line = one_error(sub("alias", "create", "alias/my:alias", key), 2, "ValidationException")
    assert line.endswith("alias/my:alias contains invalid characters for an alias")
    assert sub("alias", "create", "alias/my_alias-/x", key).returncode == 0


def test_rotate_on_demand_answers_the_bare_key_id(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.rotate_key_on_demand(KeyId=kms.key_arn(key_id)) == {"KeyId": key_id}


@pytest.mark.parametrize("text", [b"a", b"abcde", b"QQ==QQ==", b"hello world!", b"not base64 at all\n"])
def test_decrypt_of_text_that_is_no_ciphertext_is_invalid_ciphertext(sub: Any, key: str, text: bytes) -> None:
    one_error(sub("decrypt", input=text), 6, "InvalidCiphertextException")


@pytest.fixture
def mac_setup(sub: Any, tmp_path: Path) -> tuple[Path, bytes]:
    assert sub("create", "--key-spec", "HMAC_256", "--alias", "alias/mac").returncode == 0
    (tmp_path / "body").write_bytes(b"body")
    proc = sub("hmac", "-k", "alias/mac", str(tmp_path / "body"))
    assert proc.returncode == 0, proc.stderr
    return tmp_path, proc.stdout


def _verify_mac(sub: Any, where: Path, spelling: bytes) -> subprocess.CompletedProcess[bytes]:
    (where / "mac").write_bytes(spelling)
    return sub("verify-mac", "-k", "alias/mac", "--mac", str(where / "mac"), str(where / "body"))


def test_base64_mac_spellings_that_are_the_same_value_verify(sub: Any, mac_setup: tuple[Path, bytes]) -> None:
    where, mac = mac_setup
    std, url = base64.b64encode(mac), base64.urlsafe_b64encode(mac)
    for spelling in (mac, std, url, std.rstrip(b"="), url.rstrip(b"="), std[:20] + b"\n" + std[20:] + b"\n"):
        assert _verify_mac(sub, where, spelling).returncode == 0, spelling


def test_base64_mac_with_anything_after_padding_or_mixed_alphabets_is_refused(
    sub: Any, mac_setup: tuple[Path, bytes]
) -> None:
    where, mac = mac_setup
    url, std = base64.urlsafe_b64encode(mac), base64.b64encode(mac)
    assert std.endswith(b"=") and not std.endswith(b"==")  # 32 bytes: 43 characters and one "="
    body = std.rstrip(b"=")
    mixed = b"-+" + body[2:] + b"="  # both alphabets in one text
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stray = body[:-1] + bytes([alphabet[alphabet.index(body[-1]) ^ 1]]) + b"="  # unused low bits set
    assert base64.b64decode(stray) == mac  # a lenient decoder takes it for the same MAC
    for spelling in (url + b"+/", url + b"=", std + b"QQ==", b"=" + std, mixed, stray):
        proc = _verify_mac(sub, where, spelling)
        assert proc.returncode == 2, (spelling, proc.stderr)
        assert b"is not base64" in proc.stderr


def test_passphrase_file_still_reads_any_bytes(sub: Any, tmp_path: Path) -> None:
    """Files may hold any bytes (only text given as text must be UTF-8)."""
    pf = tmp_path / "binary-pass"
    pf.write_bytes(b"\xff\xfe" + PASSPHRASE.encode() + b"\n")
    env = {"KMSCTL_HOME": str(tmp_path / "bin"), "KMSCTL_PASSPHRASE_FILE": str(pf)}
    assert sub("-q", "init", env=env).returncode == 0
    assert sub("-q", "create", env=env).returncode == 0

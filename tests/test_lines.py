"""Many operations in one call: --lines on the crypto commands, and several
INPUTs with --out-dir on encrypt, decrypt, seal and unseal."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def key(cli: Any) -> str:
    assert cli("create", "--alias", "alias/app").exit_code == 0
    return "alias/app"


def events(cli: Any, name: str) -> list[str]:
    out = cli("-o", "text", "audit", "list", "--event", name, "--limit", "1000")
    assert out.exit_code == 0, out.stderr
    return out.stdout.splitlines()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ----- --lines -----


def test_encrypt_and_decrypt_lines_round_trip_in_order(cli: Any, key: str) -> None:
    plain = "first\r\nsecond has spaces  \n\nthird, last, no newline"
    enc = cli("encrypt", "-k", key, "--lines", input=plain)
    assert enc.exit_code == 0, enc.stderr
    lines = enc.stdout.split("\n")
    assert len(lines) == 5 and lines[4] == ""  # four results, each ending in a newline
    assert lines[2] == ""  # the empty line is an empty result
    assert all(base64.b64decode(x, validate=True)[:1] == b"\xa9" for x in (lines[0], lines[1], lines[3]))
    dec = cli("decrypt", "--lines", input=enc.stdout_bytes)
    assert dec.exit_code == 0, dec.stderr
    assert dec.stdout == "first\nsecond has spaces  \n\nthird, last, no newline\n"  # CRLF read as LF
    assert len(events(cli, "Encrypt")) == 3 and len(events(cli, "Decrypt")) == 3  # one record per line


def test_a_failed_line_is_an_empty_line_and_the_first_failure_is_the_exit_code(cli: Any, key: str) -> None:
    good = cli("encrypt", "-k", key, "--lines", input="a\nb\n").stdout.split("\n")
    tampered = base64.b64decode(good[1])
    tampered = b64(tampered[:-1] + bytes([tampered[-1] ^ 1]))
    out = cli("decrypt", "--lines", input=f"{good[0]}\nnot base64!\n{tampered}\n{good[1]}\n")
    assert out.exit_code == 2  # the first failure: line 2's ValidationException, not line 3's exit 6
    assert out.stdout == "a\n\n\nb\n"
    err = out.stderr.splitlines()
    assert err[0].startswith("kmsctl: line 2: ValidationException: the ciphertext is not base64")
    assert err[1].startswith("kmsctl: line 3: InvalidCiphertextException: ")
    assert len(err) == 2
    out = cli("decrypt", "--lines", input=f"{tampered}\nnot base64!\n")
    assert out.exit_code == 6 and out.stdout == "\n\n"


def test_base64_values_carry_any_bytes(cli: Any, key: str) -> None:
    secrets = [b"two\nlines", b"\x00\xff binary", b"trailing cr\r"]
    enc = cli("encrypt", "-k", key, "--lines", "--base64", input="".join(b64(s) + "\n" for s in secrets))
    assert enc.exit_code == 0, enc.stderr
    dec = cli("decrypt", "--lines", "--base64", input=enc.stdout_bytes)
    assert [base64.b64decode(x) for x in dec.stdout.splitlines()] == secrets
    text = cli("decrypt", "--lines", input=enc.stdout_bytes)  # a line break cannot be a text line
    assert text.exit_code == 2
    assert "line 1: ValidationException: the plaintext holds a line break (hint: use --base64" in text.stderr
    assert text.stdout_bytes.split(b"\n")[:3] == [b"", b"\x00\xff binary", b"trailing cr\r"]
    bad = cli("encrypt", "-k", key, "--lines", "--base64", input="plain text\n")
    assert bad.exit_code == 2 and "line 1: ValidationException: the plaintext is not base64" in bad.stderr


def test_a_locked_keyring_is_one_error_not_one_per_line(cli: Any, key: str) -> None:
    blobs = cli("encrypt", "-k", key, "--lines", input="a\nb\nc\n").stdout
    for args in (["encrypt", "-k", key], ["decrypt"]):
        out = cli(*args, "--lines", input=blobs, env={"KMSCTL_PASSPHRASE_FILE": None})
        assert out.exit_code == 5
        assert out.stdout == ""
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("kmsctl: AccessDeniedException: ")


def test_the_run_unlocks_once(cli: Any, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kmsctl.keyring import unlock

    calls: list[int] = []
    real = unlock.unlock
    monkeypatch.setattr(unlock, "unlock", lambda *a: calls.append(1) or real(*a))
    enc = cli("encrypt", "-k", key, "--lines", input="x\n" * 50)
    assert enc.exit_code == 0 and len(enc.stdout.splitlines()) == 50
    assert calls == [1]


def test_a_line_too_long_fails_alone(cli: Any, key: str) -> None:
    out = cli("encrypt", "-k", key, "--lines", input="a\n" + "x" * 20000 + "\nb\n" + "y" * 4097 + "\n")
    assert out.exit_code == 2
    res = out.stdout.split("\n")
    assert res[1] == "" and res[3] == "" and res[0] and res[2]
    assert "line 2: ValidationException: the line is longer than 16384 bytes" in out.stderr
    assert "line 4: ValidationException: " in out.stderr  # a 4097-byte plaintext: the service's limit


def test_re_encrypt_lines(cli: Any, key: str) -> None:
    assert cli("create", "--alias", "alias/new").exit_code == 0
    enc = cli("encrypt", "-k", key, "-c", "a=1", "--lines", input="p1\np2\n")
    re = cli("re-encrypt", "-k", "alias/new", "--source-context", "a=1", "--lines", input=enc.stdout_bytes)
    assert re.exit_code == 0, re.stderr
    assert cli("decrypt", "-k", "alias/new", "--lines", input=re.stdout_bytes).stdout == "p1\np2\n"


def test_sign_and_verify_lines(cli: Any) -> None:
    assert (
        cli("create", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY", "--alias", "alias/s").exit_code == 0
    )
    sigs = cli("sign", "-k", "alias/s", "--lines", input="m1\nm\twith tab\n").stdout.splitlines()
    assert len(sigs) == 2
    ok = cli("verify", "-k", "alias/s", "--lines", input=f"m1\t{sigs[0]}\nm\twith tab\t{sigs[1]}\n")
    assert (ok.exit_code, ok.stdout) == (0, "true\ntrue\n"), ok.stderr
    bad = cli("verify", "-k", "alias/s", "--lines", input=f"m2\t{sigs[0]}\nno tab\nm1\t{sigs[0]}\n")
    assert (bad.exit_code, bad.stdout) == (1, "\n\ntrue\n")
    assert "line 1: KMSInvalidSignatureException" in bad.stderr
    assert "line 2: ValidationException: expected MESSAGE<TAB>SIGNATURE" in bad.stderr
    b = cli("verify", "-k", "alias/s", "--lines", "--base64", input=f"{b64(b'm1')}\t{sigs[0]}\n")
    assert (b.exit_code, b.stdout) == (0, "true\n")


def test_verify_options_stay_as_they_were_without_lines(cli: Any, tmp_path: Path) -> None:
    assert (
        cli("create", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY", "--alias", "alias/s").exit_code == 0
    )
    missing = cli("verify", "-k", "alias/s", input="m")
    assert missing.exit_code == 2 and "Missing option '--signature'" in missing.stderr
    sig = tmp_path / "sig"
    sig.write_bytes(cli("sign", "-k", "alias/s", input="m").stdout_bytes)
    assert cli("verify", "-k", "alias/s", "--signature", str(sig), input="m").exit_code == 0
    both = cli("verify", "-k", "alias/s", "--signature", str(sig), "--lines", input="m\tAAAA\n")
    assert both.exit_code == 2 and "--signature is not for --lines" in both.stderr
    assert cli("verify", "-k", "alias/s", "--signature", str(sig), "--base64", input="m").exit_code == 2


def test_hmac_lines_equal_single_calls(cli: Any) -> None:
    assert cli("create", "--key-spec", "HMAC_256", "--alias", "alias/h").exit_code == 0
    many = cli("hmac", "-k", "alias/h", "--lines", input="one\ntwo\n").stdout.splitlines()
    single = [cli("hmac", "-k", "alias/h", "--base64", input=m).stdout.strip() for m in ("one", "two")]
    assert many == single


def test_random_lines(cli: Any) -> None:
    out = cli("random", "--lines", input="16\n\n1\n2000\nten\n32\n")
    assert out.exit_code == 2
    res = out.stdout.split("\n")
    assert [len(base64.b64decode(x)) for x in res[:6]] == [16, 0, 1, 0, 0, 32]
    assert "line 4: ValidationException" in out.stderr and "line 5: ValidationException" in out.stderr
    assert "line 2" not in out.stderr  # an empty line is no failure
    refused = cli("random", "--lines", "--bytes", "8", input="1\n")
    assert refused.exit_code == 2 and "drop N and --bytes" in refused.stderr
    positional = cli("random", "--lines", "8", input="1\n")  # a count on the command line too: refused, not ignored
    assert positional.exit_code == 2 and "drop N and --bytes" in positional.stderr


def test_json_lines(cli: Any, key: str) -> None:
    out = cli("-o", "json", "encrypt", "-k", key, "--lines", input="a\n\nb\n")
    assert out.exit_code == 0
    res = out.stdout.split("\n")
    assert res[1] == "" and len(res) == 4
    docs = [json.loads(x) for x in (res[0], res[2])]
    assert all(d["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT" and d["KeyId"].startswith("arn:aws:kms:") for d in docs)
    back = cli("decrypt", "--lines", input="\n".join(d["CiphertextBlob"] for d in docs))
    assert back.stdout == "a\nb\n"


def test_single_calls_are_unchanged(cli: Any, key: str) -> None:
    blob = cli("encrypt", "-k", key, input="a\nb\n").stdout_bytes
    assert blob[:1] == b"\xa9"  # raw to a pipe, and the whole input is one plaintext
    assert cli("decrypt", input=blob).stdout == "a\nb\n"
    two = cli("encrypt", "-k", key, "a", "b")
    assert two.exit_code == 2 and "several INPUTs need --out-dir DIR" in two.stderr
    assert cli("encrypt", "-k", key, "--force", input="x").exit_code == 2


def test_lines_through_the_real_binary(sub: Any, tmp_path: Path) -> None:
    assert sub("create", "--alias", "alias/app").returncode == 0
    plain = "".join(f"secret number {i}\n" for i in range(200)).encode()
    enc = sub("encrypt", "-k", "alias/app", "--lines", input=plain)
    assert enc.returncode == 0, enc.stderr
    assert len(enc.stdout.splitlines()) == 200
    dec = sub("decrypt", "--lines", input=enc.stdout)
    assert (dec.returncode, dec.stdout, dec.stderr) == (0, plain, b"")
    bad = sub("decrypt", "--lines", input=b"AAAA\n" + enc.stdout[:-1])
    assert bad.returncode == 6 and bad.stdout.split(b"\n")[0] == b""
    assert bad.stderr.decode().startswith("kmsctl: line 1: InvalidCiphertextException: ")


# ----- --out-dir -----


def test_encrypt_and_decrypt_out_dir(cli: Any, key: str, tmp_path: Path) -> None:
    src, enc, dec = tmp_path / "src", tmp_path / "enc", tmp_path / "dec"
    for d in (src, enc, dec):
        d.mkdir()
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "b").write_bytes(b"\x00beta")
    out = cli("encrypt", "-k", key, "--out-dir", str(enc), str(src / "a.txt"), str(src / "b"))
    assert (out.exit_code, out.stdout, out.stderr) == (0, "", "")
    assert sorted(p.name for p in enc.iterdir()) == ["a.txt.enc", "b.enc"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in enc.iterdir())
    assert (enc / "a.txt.enc").read_bytes()[:1] == b"\xa9"  # what 'encrypt > FILE' writes: raw
    out = cli("decrypt", "--out-dir", str(dec), str(enc / "a.txt.enc"), str(enc / "b.enc"))
    assert out.exit_code == 0, out.stderr
    assert (dec / "a.txt").read_bytes() == b"alpha\n" and (dec / "b").read_bytes() == b"\x00beta"
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in dec.iterdir())
    (enc / "c.bin").write_bytes((enc / "b.enc").read_bytes())
    assert cli("decrypt", "--out-dir", str(dec), str(enc / "c.bin")).exit_code == 0
    assert (dec / "c.bin.out").read_bytes() == b"\x00beta"  # no .enc to strip


def test_out_dir_never_overwrites_without_force_and_goes_on(cli: Any, key: str, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "b.enc").write_text("keep me")
    out = cli("encrypt", "-k", key, "--out-dir", str(out_dir), *(str(tmp_path / n) for n in "abc"))
    assert out.exit_code == 2
    assert f"kmsctl: {tmp_path / 'b'}: UsageError: {out_dir / 'b.enc'} exists (hint: use --force" in out.stderr
    assert (out_dir / "b.enc").read_text() == "keep me"
    assert (out_dir / "a.enc").is_file()
    assert (out_dir / "c.enc").is_file()  # the run went on after b
    assert not [p for p in out_dir.iterdir() if "kmsctl-tmp" in p.name]
    forced = cli("encrypt", "-k", key, "--force", "--out-dir", str(out_dir), str(tmp_path / "b"))
    assert forced.exit_code == 0
    assert cli("decrypt", str(out_dir / "b.enc")).stdout == "b"


def test_a_failing_input_leaves_no_file(cli: Any, key: str, tmp_path: Path) -> None:
    (tmp_path / "good").write_bytes(cli("encrypt", "-k", key, input="ok").stdout_bytes)
    (tmp_path / "bad.enc").write_bytes(b"\xa9 not a ciphertext")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = cli("decrypt", "--out-dir", str(out_dir), str(tmp_path / "bad.enc"), str(tmp_path / "good"))
    assert out.exit_code == 6
    assert out.stderr.startswith(f"kmsctl: {tmp_path / 'bad.enc'}: InvalidCiphertextException: ")
    assert sorted(os.listdir(out_dir)) == ["good.out"]


@pytest.mark.parametrize(
    ("folder", "inputs", "message"),
    [
        ("out", ["-", "x"], "not - (stdin has no name)"),
        ("out", [], "--out-dir needs INPUT files"),
        ("missing", ["x"], "is not a folder"),
        ("out", ["d1/x", "d2/x"], "would both write"),
        ("out", ["--lines", "x"], "--lines and --out-dir exclude each other"),
    ],
)
def test_out_dir_usage_errors(cli: Any, key: str, tmp_path: Path, folder: str, inputs: list[str], message: str) -> None:
    (tmp_path / "out").mkdir()
    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x").write_text("x")
    (tmp_path / "x").write_text("x")
    paths = [a if a.startswith("-") else str(tmp_path / a) for a in inputs]
    out = cli("encrypt", "-k", key, "--out-dir", str(tmp_path / folder), *paths)
    assert out.exit_code == 2 and message in out.stderr, out.stderr
    assert os.listdir(tmp_path / "out") == []


def test_seal_and_unseal_out_dir(cli: Any, key: str, tmp_path: Path) -> None:
    (tmp_path / "dump.sql").write_bytes(b"x" * 100_000)
    (tmp_path / "notes").write_bytes(b"n")
    sealed, plain = tmp_path / "sealed", tmp_path / "plain"
    sealed.mkdir()
    plain.mkdir()
    out = cli("seal", "-k", key, "--out-dir", str(sealed), str(tmp_path / "dump.sql"), str(tmp_path / "notes"))
    assert out.exit_code == 0, out.stderr
    assert sorted(os.listdir(sealed)) == ["dump.sql.sealed", "notes.sealed"]
    out = cli("unseal", "--out-dir", str(plain), *(str(p) for p in sorted(sealed.iterdir())))
    assert out.exit_code == 0, out.stderr
    assert (plain / "dump.sql").read_bytes() == b"x" * 100_000 and (plain / "notes").read_bytes() == b"n"
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in plain.iterdir())
    again = cli("unseal", "--out-dir", str(plain), str(sealed / "notes.sealed"))
    assert again.exit_code == 2 and "exists" in again.stderr
    both = cli("unseal", "--out", str(tmp_path / "o"), "--out-dir", str(plain), str(sealed / "notes.sealed"))
    assert both.exit_code == 2 and "--out and --out-dir exclude each other" in both.stderr


def test_out_dir_through_the_real_binary(sub: Any, tmp_path: Path) -> None:
    assert sub("create", "--alias", "alias/app").returncode == 0
    names = [f"s{i}.txt" for i in range(5)]
    for n in names:
        (tmp_path / n).write_text(f"secret {n}")
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    enc.mkdir()
    dec.mkdir()
    out = sub("encrypt", "-k", "alias/app", "--out-dir", str(enc), *(str(tmp_path / n) for n in names))
    assert out.returncode == 0, out.stderr
    out = sub("decrypt", "--out-dir", str(dec), *(str(enc / f"{n}.enc") for n in names))
    assert out.returncode == 0, out.stderr
    assert all((dec / n).read_text() == f"secret {n}" for n in names)

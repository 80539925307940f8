"""seal, unseal and inspect (docs/SEALED-FORMAT.md): round trips at
the chunk boundaries through files and pipes, 1 GiB in constant memory, every
kind of tampering, --out that appears only on success, rotation and key
states, and inspect without unlocking.

In-process (``cli``) where only bytes and exit codes matter, the real binary
(``sub`` and hand-built pipelines) where pipes, terminals and signals do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kmsctl import errors as E
from kmsctl.cli import streams
from kmsctl.crypto import sealed
from kmsctl.keyring import keyring as kr

EXE = Path(sys.executable).with_name("kmsctl")
CS = sealed.CHUNK_SIZE
BLOCK = CS + sealed.TAG_SIZE
SIZES = [0, 1, CS - 1, CS, CS + 1, 5 * CS + 7]
GIB = 1 << 30
RSS_LIMIT_KIB = 64 * 1024


def data_of(size: int, seed: int = 0) -> bytes:
    """Incompressible, reproducible, different at every offset."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def one_line_error(stderr: str | bytes, name: str) -> str:
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert text.startswith(f"kmsctl: {name}: ") and text.count("\n") == 1, text
    return text


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "kmsctl-tmp" in p.name)


def writing_in(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` has a file in ``folder`` open (an unnamed one too)."""
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith(f"{folder}/"):
                    return True
    return False


@pytest.fixture
def key(cli: Any) -> str:
    made = cli("-o", "text", "create", "--alias", "alias/files")
    assert made.exit_code == 0, made.stderr
    return str(made.stdout.strip())


@pytest.fixture
def seal_bytes(cli: Any, key: str) -> Any:
    def run(data: bytes, *args: str) -> bytes:
        r = cli("seal", "-k", key, *args, input=data)
        assert r.exit_code == 0, r.stderr
        return bytes(r.stdout_bytes)

    return run


def chunks_of(data: bytes) -> tuple[bytes, list[bytes]]:
    header = sealed.read_header(io.BytesIO(data))
    body = data[header.size :]
    return data[: header.size], [body[i : i + BLOCK] for i in range(0, len(body), BLOCK)]


# ----- round trips -----
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_through_stdin_and_stdout(cli: Any, seal_bytes: Any, size: int) -> None:
    data = data_of(size)
    sealed_data = seal_bytes(data, "-c", "purpose=test")
    chunks = max(1, -(-size // CS))
    assert len(sealed_data) == chunks_of(sealed_data)[0].__len__() + size + 16 * chunks
    r = cli("unseal", input=sealed_data)
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes == data


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_through_files(cli: Any, key: str, tmp_path: Path, size: int) -> None:
    plain, box, back = tmp_path / "plain", tmp_path / "box.sealed", tmp_path / "back"
    plain.write_bytes(data_of(size, seed=1))
    r = cli("seal", "-k", "alias/files", "--out", str(box), str(plain))
    assert (r.exit_code, r.stdout_bytes) == (0, b""), r.stderr
    r = cli("unseal", "--out", str(back), str(box))
    assert (r.exit_code, r.stdout_bytes) == (0, b""), r.stderr
    assert back.read_bytes() == plain.read_bytes()
    assert stat.S_IMODE(back.stat().st_mode) == stat.S_IMODE(box.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []
    shown = json.loads(cli("-o", "json", "inspect", str(box)).stdout)
    assert shown["PlaintextSize"] == size
    assert shown["HeaderSize"] + size + 16 * max(1, -(-size // CS)) == box.stat().st_size


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_through_real_pipes(sub: Any, key: str, size: int) -> None:
    data = data_of(size, seed=2)
    boxed = sub("seal", "-k", key, input=data)
    assert boxed.returncode == 0, boxed.stderr
    back = sub("unseal", input=boxed.stdout)
    assert (back.returncode, back.stderr) == (0, b"")
    assert back.stdout == data


def _generator(blocks: int) -> str:
    """A process that streams ``blocks`` MiB, each block numbered, to stdout."""
    return (
        "import hashlib, sys\n"
        "base = b''.join(hashlib.sha256(i.to_bytes(4, 'big')).digest() for i in range(32768))\n"
        "out = sys.stdout.buffer\n"
        f"for i in range({blocks}):\n"
        "    out.write(i.to_bytes(8, 'big') + base[8:])\n"
        "out.flush()\n"
    )


def _expected_digest(blocks: int) -> str:
    base = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(32768))
    h = hashlib.sha256()
    for i in range(blocks):
        h.update(i.to_bytes(8, "big") + base[8:])
    return h.hexdigest()


HASH_STDIN = (
    "import hashlib, sys\n"
    "h = hashlib.sha256(); buf = bytearray(1 << 20); view = memoryview(buf); n = 0\n"
    "while (k := sys.stdin.buffer.readinto(buf)):\n"
    "    h.update(view[:k]); n += k\n"
    "print(h.hexdigest(), n)\n"
)


def _peak_rss_kib(report: Path) -> int:
    for line in report.read_text().splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1])
    raise AssertionError(report.read_text())


@pytest.mark.slow
def test_one_gib_through_a_pipeline_in_constant_memory(key: str, env: dict[str, str], tmp_path: Path) -> None:
    """generate | seal | unseal | sha256, with nothing on disk; peak RSS of
    seal and unseal from /usr/bin/time -v when it exists."""
    blocks = GIB >> 20
    gnu_time = Path("/usr/bin/time")
    reports = [tmp_path / "seal.rss", tmp_path / "unseal.rss"]

    def timed(report: Path, *args: str) -> list[str]:
        prefix = [str(gnu_time), "-v", "-o", str(report)] if gnu_time.exists() else []
        return [*prefix, str(EXE), *args]

    started = time.monotonic()
    gen = subprocess.Popen([sys.executable, "-c", _generator(blocks)], stdout=subprocess.PIPE)
    seal = subprocess.Popen(timed(reports[0], "seal", "-k", key), stdin=gen.stdout, stdout=subprocess.PIPE, env=env)
    unseal = subprocess.Popen(timed(reports[1], "unseal"), stdin=seal.stdout, stdout=subprocess.PIPE, env=env)
    digest = subprocess.Popen([sys.executable, "-c", HASH_STDIN], stdin=unseal.stdout, stdout=subprocess.PIPE)
    for p in (gen, seal, unseal):
        assert p.stdout is not None
        p.stdout.close()  # only the next process holds each pipe
    out, _ = digest.communicate(timeout=300)
    codes = [p.wait(timeout=60) for p in (gen, seal, unseal)]
    elapsed = time.monotonic() - started
    assert codes == [0, 0, 0]
    assert out.decode().split() == [_expected_digest(blocks), str(GIB)]
    print(f"1 GiB generate | seal | unseal | sha256: {elapsed:.1f} s")
    if gnu_time.exists():
        for report in reports:
            rss = _peak_rss_kib(report)
            print(f"{report.stem}: peak RSS {rss / 1024:.1f} MiB")
            assert rss < RSS_LIMIT_KIB, f"{report.stem} peaked at {rss} KiB"


# ----- tampering: in-process over every bit, through the CLI on a sample -----
def _small_file() -> tuple[bytes, bytes]:
    """About 300 bytes, three chunks of 8: header, commitment, MAC and chunks all flippable."""
    out = io.BytesIO()
    dk = bytes(range(32))
    sealed.write_sealed(
        io.BytesIO(data_of(20, seed=3)),
        out,
        key_id="k",
        context={"a": "b"},
        encrypted_data_key=b"\xa9",
        data_key=dk,
        salt=bytes(32),
        chunk_size=8,
    )
    return out.getvalue(), dk


def test_every_single_bit_flip_is_rejected() -> None:
    data, dk = _small_file()
    assert 250 <= len(data) <= 360
    header_size = sealed.read_header(io.BytesIO(data)).size
    seen: dict[str, int] = {}
    for offset in range(len(data)):
        for bit in range(8):
            tampered = bytearray(data)
            tampered[offset] ^= 1 << bit
            src = io.BytesIO(bytes(tampered))
            out = io.BytesIO()
            with pytest.raises(E.KMSError) as caught:
                sealed.Opener(sealed.read_header(src), dk).stream(src, out)
            error = caught.value
            if offset < 9:  # magic and version: not a sealed file (of a version we know)
                assert error.exit_code == 2, (offset, bit, error)
            else:
                assert isinstance(error, E.InvalidCiphertextException), (offset, bit, error)
            if offset < header_size:
                assert out.getvalue() == b"", (offset, bit)
            seen[error.message.split(":")[0]] = seen.get(error.message.split(":")[0], 0) + 1
    assert {"not a kmsctl sealed file", "sealed file header fails authentication"} <= set(seen)
    assert any(m.startswith("chunk ") for m in seen)


def test_a_sample_of_bit_flips_through_the_cli_leaves_no_file(cli: Any, seal_bytes: Any, tmp_path: Path) -> None:
    data = seal_bytes(data_of(200, seed=4), "-c", "app=web")
    box, out = tmp_path / "box", tmp_path / "out"
    header_size = sealed.read_header(io.BytesIO(data)).size
    # magic, version, length, all through the header (KeyId, context, the data key), commitment, MAC, body
    offsets = sorted({*range(0, 13), *range(13, header_size, 11), *range(header_size - 64, len(data), 9)})
    for offset in offsets:
        tampered = bytearray(data)
        tampered[offset] ^= 1 << (offset % 8)
        box.write_bytes(bytes(tampered))
        r = cli("unseal", "--out", str(out), str(box))
        assert r.exit_code == (2 if offset < 9 else 6), (offset, r.stderr)
        one_line_error(r.stderr, "ValidationException" if offset < 9 else "InvalidCiphertextException")
        assert not out.exists() and leftovers(tmp_path) == [], offset


@pytest.fixture
def six_chunks(seal_bytes: Any) -> tuple[bytes, bytes, bytes, list[bytes]]:
    plain = data_of(5 * CS + 7, seed=5)
    data = seal_bytes(plain)
    preamble, chunks = chunks_of(data)
    assert len(chunks) == 6
    return plain, data, preamble, chunks


def _unseal_fails(cli: Any, tmp_path: Path, data: bytes, message: str) -> None:
    box, out = tmp_path / "box", tmp_path / "out"
    box.write_bytes(data)
    r = cli("unseal", "--out", str(out), str(box))
    assert r.exit_code == 6, r.stderr
    assert one_line_error(r.stderr, "InvalidCiphertextException").strip().endswith(message), r.stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_truncation_at_every_chunk_boundary(cli: Any, tmp_path: Path, six_chunks: Any) -> None:
    _, _, preamble, chunks = six_chunks
    _unseal_fails(cli, tmp_path, preamble, "sealed file is truncated after the header")
    for kept in range(1, len(chunks)):
        _unseal_fails(cli, tmp_path, preamble + b"".join(chunks[:kept]), f"truncated after chunk {kept - 1}")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("drop 0", "chunk 0 fails authentication"),
        ("drop 2", "chunk 2 fails authentication"),
        ("drop last", "truncated after chunk 4"),
        ("swap 1 2", "chunk 1 fails authentication"),
        ("swap 4 5", "chunk 4 fails authentication"),
        ("duplicate 0", "chunk 1 fails authentication"),
        ("duplicate last", "trailing data after the last chunk"),
        ("append 1", "trailing data after the last chunk"),
        ("append 100", "trailing data after the last chunk"),
        ("append full chunk", "chunk 5 fails authentication"),
        ("truncate inside last", "chunk 5 fails authentication"),
    ],
)
def test_chunk_tampering(cli: Any, tmp_path: Path, six_chunks: Any, name: str, message: str) -> None:
    _, _, preamble, c = six_chunks
    bodies = {
        "drop 0": c[1:],
        "drop 2": c[:2] + c[3:],
        "drop last": c[:5],
        "swap 1 2": [c[0], c[2], c[1], *c[3:]],
        "swap 4 5": [*c[:4], c[5], c[4]],
        "duplicate 0": [c[0], *c],
        "duplicate last": [*c, c[5]],
        "append 1": [*c, b"\n"],
        "append 100": [*c, bytes(100)],
        "append full chunk": [*c, c[0]],
        "truncate inside last": [*c[:5], c[5][:-1]],
    }
    _unseal_fails(cli, tmp_path, preamble + b"".join(bodies[name]), message)


def test_streaming_failure_leaves_only_authenticated_chunks_on_stdout(cli: Any, six_chunks: Any) -> None:
    plain, data, preamble, _ = six_chunks
    tampered = bytearray(data)
    tampered[len(preamble) + 3 * BLOCK + 5] ^= 1
    r = cli("unseal", input=bytes(tampered))
    assert r.exit_code == 6
    one_line_error(r.stderr, "InvalidCiphertextException")
    assert "chunk 3 fails authentication" in r.stderr
    assert r.stdout_bytes == plain[: 3 * CS]  # chunks 0-2, authenticated, and nothing after


def test_not_a_sealed_file(cli: Any, key: str) -> None:
    r = cli("unseal", input=b"just some text\n")
    assert r.exit_code == 2
    assert one_line_error(r.stderr, "ValidationException") == "kmsctl: ValidationException: not a kmsctl sealed file\n"
    blob = cli("encrypt", "-k", key, input=b"x").stdout_bytes
    r = cli("unseal", input=blob)
    assert r.exit_code == 2 and "kmsctl decrypt" in r.stderr
    r = cli("inspect", input=b"\x89KMSSEAL\x07" + bytes(100))
    assert r.exit_code == 2
    assert one_line_error(r.stderr, "ValidationException").endswith("unsupported sealed file version 7\n")


def test_counter_overflow_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    data, dk = _small_file()  # three chunks
    monkeypatch.setattr(sealed, "MAX_CHUNKS", 2)
    src = io.BytesIO(data)
    with pytest.raises(E.InvalidCiphertextException, match="chunk 2 is past the last possible chunk"):
        sealed.Opener(sealed.read_header(src), dk).stream(src, io.BytesIO())
    with pytest.raises(E.ValidationException, match="too large"):
        sealed.write_sealed(
            io.BytesIO(bytes(40)),
            io.BytesIO(),
            key_id="k",
            context={},
            encrypted_data_key=b"x",
            data_key=dk,
            salt=bytes(32),
            chunk_size=16,
        )


# ----- keys: rotation, states, another keyring, the context -----
def test_sealed_files_survive_rotation_and_fail_while_disabled(
    cli: Any, kms: Any, seal_bytes: Any, key: str, tmp_path: Path
) -> None:
    plain = data_of(CS + 10, seed=6)
    before = seal_bytes(plain, "-c", "app=web")
    for _ in range(2):
        kms.rotate_key_on_demand(KeyId=key)
    after = seal_bytes(plain, "-c", "app=web")
    for data in (before, after):
        r = cli("unseal", input=data)
        assert (r.exit_code, r.stdout_bytes) == (0, plain), r.stderr
    kms.disable_key(KeyId=key)
    box, out = tmp_path / "box", tmp_path / "out"
    box.write_bytes(before)
    r = cli("unseal", "--out", str(out), str(box))
    assert r.exit_code == 4
    one_line_error(r.stderr, "DisabledException")
    assert not out.exists() and leftovers(tmp_path) == []
    r = cli("seal", "-k", key, input=plain)
    assert r.exit_code == 4 and r.stdout_bytes == b""
    kms.enable_key(KeyId=key)
    assert cli("unseal", "--out", str(out), str(box)).exit_code == 0
    assert out.read_bytes() == plain


def test_key_pending_deletion_is_exit_4(cli: Any, kms: Any, seal_bytes: Any, key: str) -> None:
    data = seal_bytes(b"secret")
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    r = cli("unseal", input=data)
    assert (r.exit_code, r.stdout_bytes) == (4, b"")
    one_line_error(r.stderr, "KMSInvalidStateException")


def test_key_of_another_keyring_is_rejected(cli: Any, seal_bytes: Any, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    kr.create(
        str(other),
        b"other passphrase",
        region="us-east-1",
        account="111122223333",
        created="2027-01-15T08:00:00+00:00",
        kdf=kr.DEFAULT_KDF,
    )
    (tmp_path / "other-pass").write_text("other passphrase\n")
    data = seal_bytes(b"secret")
    env = {"KMSCTL_HOME": str(other), "KMSCTL_PASSPHRASE_FILE": str(tmp_path / "other-pass")}
    r = cli("unseal", input=data, env=env)
    assert r.exit_code == 6
    text = one_line_error(r.stderr, "InvalidCiphertextException")
    assert "sealed file header fails authentication: its data key does not decrypt" in text
    assert "does not exist" in text


def test_context_must_match_when_given(cli: Any, seal_bytes: Any) -> None:
    data = seal_bytes(b"secret", "-c", "app=web", "-c", "env=prod")
    wrong = (["-c", "app=web"], ["-c", "app=web", "-c", "env=dev"], ["-c", "app=web", "-c", "env=prod", "-c", "x=y"])
    for given in wrong:
        r = cli("unseal", *given, input=data)
        assert r.exit_code == 6, given
        assert "does not match" in one_line_error(r.stderr, "InvalidCiphertextException")
        assert r.stdout_bytes == b""
    for given in ([], ["-c", "env=prod", "-c", "app=web"]):
        r = cli("unseal", *given, input=data)
        assert (r.exit_code, r.stdout_bytes) == (0, b"secret"), r.stderr


# ----- inspect -----
def test_inspect_needs_no_unlock_nor_keyring(seal_bytes: Any, tmp_path: Path) -> None:
    plain = data_of(3 * CS + 1, seed=7)
    box = tmp_path / "box"
    box.write_bytes(seal_bytes(plain, "-c", "app=web", "-c", "\u00e9=\u00fc"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_") and k != "NO_COLOR"}
    env["KMSCTL_HOME"] = str(tmp_path / "no-keyring-here")

    def run(*args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(EXE), *args],
            stdin=stdin,
            env=env,
            capture_output=True,
            timeout=30,
            start_new_session=True,
            check=False,
        )

    r = run("-o", "json", "inspect", str(box))
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert list(shown) == ["KeyId", "EncryptionContext", "Algorithm", "ChunkSize", "HeaderSize", "PlaintextSize"]
    assert shown["KeyId"].startswith("arn:aws:kms:us-east-1:111122223333:key/")
    assert shown["EncryptionContext"] == {"app": "web", "\u00e9": "\u00fc"}
    assert (shown["Algorithm"], shown["ChunkSize"]) == (sealed.ALGORITHM, CS)
    assert shown["PlaintextSize"] == len(plain)
    assert shown["HeaderSize"] + len(plain) + 4 * 16 == box.stat().st_size
    with box.open("rb") as f:  # a pipe: read through
        piped = run("-o", "text", "inspect", stdin=f)
    assert piped.returncode == 0, piped.stderr
    row = piped.stdout.decode().rstrip("\n").split("\t")
    assert row == [
        shown["KeyId"], '{"app":"web","\u00e9":"\u00fc"}', sealed.ALGORITHM, str(CS), str(shown["HeaderSize"]),
        str(len(plain)),
    ]  # fmt: skip
    assert not (tmp_path / "no-keyring-here").exists()
    cut = box.read_bytes()[:-1]
    box.write_bytes(cut)
    r = run("inspect", str(box))
    assert r.returncode == 6 and b"impossible" in r.stderr


def test_inspect_loads_neither_cryptography_nor_the_keyring(seal_bytes: Any, tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.write_bytes(seal_bytes(b"x"))
    code = (
        "import sys, json, io, contextlib\n"
        "from kmsctl.cli import run\n"
        "with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO())):\n"
        f"    rc = run(['inspect', {str(box)!r}])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'sqlite3'})\n"
        "sys.stderr.write(json.dumps([rc, heavy]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    env["KMSCTL_HOME"] = str(tmp_path / "none")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == [0, []], proc.stderr


def test_inspect_text_columns_are_the_documented_ones(cli: Any, seal_bytes: Any) -> None:
    help_text = " ".join(cli("inspect", "--help").stdout.split())
    documented = help_text.split("Text columns: ", 1)[1].split(".")[0].replace(" (canonical JSON)", "").split()
    r = cli("-o", "text", "inspect", input=seal_bytes(b"x"))
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.rstrip("\n").split("\t")) == len(documented) == 6


# ----- output: --out, --force, terminals, FIFOs, signals, progress -----
def test_existing_out_needs_force(cli: Any, key: str, seal_bytes: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"precious")
    data = seal_bytes(b"secret")
    for args in (["seal", "-k", key, "--out", str(out)], ["unseal", "--out", str(out)]):
        r = cli(*args, input=b"secret" if args[0] == "seal" else data)
        assert r.exit_code == 2
        assert "--force" in one_line_error(r.stderr, "UsageError")
        assert out.read_bytes() == b"precious"
    r = cli("unseal", "--out", str(out), "--force", input=data)
    assert r.exit_code == 0, r.stderr
    assert out.read_bytes() == b"secret"
    assert leftovers(tmp_path) == []


def test_out_with_force_replaces_a_symlink_not_the_file_it_names(cli: Any, seal_bytes: Any, tmp_path: Path) -> None:
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_bytes(b"old")
    link.symlink_to(target)
    r = cli("unseal", "--out", str(link), "--force", input=seal_bytes(b"new"))
    assert r.exit_code == 0, r.stderr
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert target.read_bytes() == b"old"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_out_to_a_fifo_writes_into_it_and_keeps_it(sub: Any, seal_bytes: Any, tmp_path: Path) -> None:
    fifo, box = tmp_path / "fifo", tmp_path / "box"
    os.mkfifo(fifo)
    box.write_bytes(seal_bytes(b"through a fifo"))
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    r = sub("unseal", "--out", str(fifo), str(box))
    assert r.returncode == 0, r.stderr
    assert reader.communicate(timeout=30)[0] == b"through a fifo"
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.fixture
def env(keyring_home: Path, passfile: Path) -> dict[str, str]:
    """The real binary's environment, as the ``sub`` fixture builds it."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    out.update(KMSCTL_HOME=str(keyring_home), KMSCTL_PASSPHRASE_FILE=str(passfile))
    return out


def test_sealed_bytes_are_not_written_to_a_terminal(env: dict[str, str], key: str) -> None:
    primary, secondary = os.openpty()
    try:
        r = subprocess.run(
            [str(EXE), "seal", "-k", key],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=env,
            timeout=30,
            check=False,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert r.returncode == 2
    text = one_line_error(r.stderr, "UsageError")
    assert "terminal" in text and "--out" in text


@pytest.mark.parametrize("command", ["unseal", "inspect"])
def test_a_terminal_is_not_read_as_a_sealed_file(env: dict[str, str], command: str) -> None:
    primary, secondary = os.openpty()
    try:
        r = subprocess.run([str(EXE), command], stdin=secondary, capture_output=True, env=env, timeout=30, check=False)
    finally:
        os.close(secondary)
        os.close(primary)
    assert r.returncode == 2
    assert "INPUT is the terminal" in one_line_error(r.stderr, "UsageError")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_unseal_leaves_no_file(env: dict[str, str], seal_bytes: Any, tmp_path: Path, sig: int) -> None:
    data = seal_bytes(data_of(8 * CS, seed=8))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(EXE), "unseal", "--out", str(out)], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None
    proc.stdin.write(data[: len(data) // 2])  # and keep stdin open: unseal waits for the rest
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not (leftovers(tmp_path) or writing_in(proc.pid, tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert leftovers(tmp_path) or writing_in(proc.pid, tmp_path), "unseal never started writing"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    one_line_error(err, "Interrupted")
    assert not out.exists() and leftovers(tmp_path) == []


def test_progress_bar_only_for_large_regular_files_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kmsctl.cli.app import App

    app = App(home=str(tmp_path))
    big, small = tmp_path / "big", tmp_path / "small"
    big.write_bytes(bytes(streams.PROGRESS_MIN))
    small.write_bytes(bytes(streams.PROGRESS_MIN - 1))
    monkeypatch.setattr(streams, "stderr_is_tty", lambda: True)
    with big.open("rb", buffering=0) as f, streams.progress_bar(app, f, "sealing") as progress:
        assert progress is not None
        progress(1 << 20)
    with small.open("rb", buffering=0) as f, streams.progress_bar(app, f, "sealing") as progress:
        assert progress is None
    app.quiet = True
    with big.open("rb", buffering=0) as f, streams.progress_bar(app, f, "sealing") as progress:
        assert progress is None
    monkeypatch.setattr(streams, "stderr_is_tty", lambda: False)
    app.quiet = False
    with big.open("rb", buffering=0) as f, streams.progress_bar(app, f, "sealing") as progress:
        assert progress is None


def test_seal_reports_progress_through_the_callback(tmp_path: Path) -> None:
    seen: list[int] = []
    size = 3 * sealed.BATCH_BYTES + 5
    out = io.BytesIO()
    sealed.write_sealed(
        io.BytesIO(bytes(size)),
        out,
        key_id="k",
        context={},
        encrypted_data_key=b"x",
        data_key=bytes(32),
        salt=bytes(32),
        progress=seen.append,
    )
    assert sum(seen) == size and len(seen) >= 3
    seen.clear()
    src = io.BytesIO(out.getvalue())
    sealed.Opener(sealed.read_header(src), bytes(32)).stream(src, io.BytesIO(), seen.append)
    assert sum(seen) == len(out.getvalue()) - sealed.read_header(io.BytesIO(out.getvalue())).size


def test_missing_input_is_one_line(cli: Any, tmp_path: Path) -> None:
    for command in (["seal", "-k", "alias/files"], ["unseal"], ["inspect"]):
        r = cli(*command, str(tmp_path / "nope"))
        assert r.exit_code == 2
        assert "cannot read" in one_line_error(r.stderr, "ValidationException")


def test_help_mentions_the_output_rules(cli: Any) -> None:
    text = " ".join(cli("unseal", "--help").stdout.split())
    assert "set -o pipefail" in text and "--out" in text
    assert shutil.which("kmsctl") or EXE.exists()

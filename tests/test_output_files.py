"""Output files (``--out``, config.toml): no plaintext left on disk by a killed
unseal, stale temporary files swept, and a symbolic link at the destination
replaced rather than followed."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmsctl import errors as E
from kmsctl import outfile
from kmsctl.crypto import sealed

EXE = Path(sys.executable).with_name("kmsctl")
CS = sealed.CHUNK_SIZE
# the real binary with named temporary files only, as on a file system without O_TMPFILE
NO_TMPFILE = (
    "import sys\nimport kmsctl.outfile\nkmsctl.outfile._O_TMPFILE = 0\n"
    "from kmsctl.cli import run\nsys.exit(run(sys.argv[1:]))\n"
)


def plaintext(size: int) -> bytes:
    """Distinct 16-byte lines, so that any piece of it on disk is recognisable."""
    return b"".join(b"secret line %09d\n" % (i,) for i in range(size // 17 + 1))[:size]


def holding(folder: Path, marker: bytes) -> list[str]:
    """The files under ``folder`` that contain ``marker``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and marker in p.read_bytes())


def written_in(pid: int, folder: Path) -> int:
    """How many bytes process ``pid`` has in the files it holds open in
    ``folder`` (an unnamed one too); -1 if it holds none."""
    size = -1
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith(f"{folder}/"):
                    size = max(size, fd.stat().st_size)
    return size


@pytest.fixture
def env(keyring_home: Path, passfile: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    out.update(KMSCTL_HOME=str(keyring_home), KMSCTL_PASSPHRASE_FILE=str(passfile))
    return out


@pytest.fixture
def box(cli: Any, tmp_path: Path) -> tuple[Path, bytes]:
    """A sealed file of 64 chunks (unseal writes about 1 MiB at a time), outside
    the folders the tests write into."""
    assert cli("create", "--alias", "alias/files").exit_code == 0
    data = plaintext(64 * CS)
    r = cli("seal", "-k", "alias/files", input=data)
    assert r.exit_code == 0, r.stderr
    path = tmp_path / "box.sealed"
    path.write_bytes(r.stdout_bytes)
    return path, data


@contextlib.contextmanager
def stalled_unseal(cmd: list[str], env: dict[str, str], sealed_bytes: bytes, out: Path) -> Iterator[Any]:
    """``unseal --out`` fed half of its input through a pipe that then stalls,
    yielded once it is writing the plaintext."""
    proc = subprocess.Popen([*cmd, "unseal", "--out", str(out)], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdin is not None
        proc.stdin.write(sealed_bytes[: len(sealed_bytes) // 2])
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while written_in(proc.pid, out.parent) < CS and time.monotonic() < deadline:
            time.sleep(0.02)
        assert written_in(proc.pid, out.parent) >= CS, "unseal never wrote a chunk"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.communicate(timeout=30)


# ----- SIGKILL mid-unseal -----
def test_a_killed_unseal_leaves_no_plaintext_on_disk(
    env: dict[str, str], box: tuple[Path, bytes], tmp_path: Path
) -> None:
    path, data = box
    folder = tmp_path / "out"
    folder.mkdir()
    with stalled_unseal([str(EXE)], env, path.read_bytes(), folder / "plain.txt") as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert list(folder.iterdir()) == []
    assert holding(tmp_path, data[:CS][:34]) == []  # not in any file at all


def test_where_named_temporary_files_are_used_the_next_unseal_sweeps_stale_ones(
    env: dict[str, str], box: tuple[Path, bytes], tmp_path: Path, sub: Any
) -> None:
    path, data = box
    folder = tmp_path / "out"
    folder.mkdir()
    with stalled_unseal([sys.executable, "-c", NO_TMPFILE], env, path.read_bytes(), folder / "plain.txt") as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    (left,) = folder.iterdir()  # what a file system without O_TMPFILE keeps until swept
    assert outfile._TMP_NAME.fullmatch(left.name) and left.name.startswith(".plain.txt.")
    assert (left.stat().st_mode & 0o777) == 0o600 and data[:34] in left.read_bytes()
    r = sub("unseal", "--out", str(folder / "again.txt"), str(path))  # too recent to be stale: kept
    assert r.returncode == 0, r.stderr
    assert left.exists()
    old = time.time() - outfile.STALE_S - 60
    os.utime(left, (old, old))
    r = sub("unseal", "--out", str(folder / "third.txt"), str(path))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["again.txt", "third.txt"]
    assert holding(folder, data[:34]) == ["again.txt", "third.txt"]


def test_the_sweep_takes_only_stale_unlocked_regular_files_of_its_pattern(tmp_path: Path) -> None:
    old = time.time() - outfile.STALE_S - 60
    names = {
        "stale": outfile.temp_name("a"),
        "fresh": outfile.temp_name("b"),
        "locked": outfile.temp_name("c"),
        "other": ".d.1234abcd.tmp",
        "no-hex": ".e.zzzzzzzz.kmsctl-tmp",
    }
    for label, name in names.items():
        (tmp_path / name).write_bytes(b"plaintext")
        if label != "fresh":
            os.utime(tmp_path / name, (old, old))
    target = tmp_path / "kept"
    target.write_bytes(b"a link's target")
    link = tmp_path / outfile.temp_name("f")
    link.symlink_to(target)
    os.utime(link, (old, old), follow_symlinks=False)
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    holder = os.open(tmp_path / names["locked"], os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # a live writer
        assert outfile.sweep(folder) == 1
    finally:
        os.close(holder)
        os.close(folder)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {*names.values(), "kept", link.name} - {names["stale"]}
    assert target.read_bytes() == b"a link's target"


# ----- the destination -----
@pytest.mark.parametrize("command", ["seal", "unseal"])
def test_force_replaces_a_planted_symlink_and_leaves_its_target(
    cli: Any, box: tuple[Path, bytes], tmp_path: Path, command: str
) -> None:
    path, _ = box
    victim, link = tmp_path / "victim", tmp_path / "out"
    victim.write_bytes(b"precious")
    link.symlink_to(victim)
    args = ["seal", "-k", "alias/files"] if command == "seal" else ["unseal"]
    r = cli(*args, "--out", str(link), str(path))
    assert r.exit_code == 2 and "exists" in r.stderr  # without --force: refused
    r = cli(*args, "--out", str(link), "--force", str(path))
    assert r.exit_code == 0, r.stderr
    assert not link.is_symlink() and (link.stat().st_mode & 0o777) == 0o600
    assert victim.read_bytes() == b"precious"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert cli(*args, "--out", str(dangling), "--force", str(path)).exit_code == 0
    assert not dangling.is_symlink() and not (tmp_path / "nowhere").exists()


def test_config_set_replaces_config_toml_atomically(cli: Any, keyring_home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.toml"
    victim.write_text('output = "json"\n')
    (keyring_home / "config.toml").symlink_to(victim)
    assert cli("config", "set", "output", "text").exit_code == 0
    written = keyring_home / "config.toml"
    assert not written.is_symlink() and 'output = "text"' in written.read_text()
    assert (written.stat().st_mode & 0o777) == 0o600 and victim.read_text() == 'output = "json"\n'
    assert [p.name for p in keyring_home.iterdir() if "tmp" in p.name] == []


# ----- the helper itself, both ways -----
@pytest.fixture(params=["unnamed", "named"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "named":
        monkeypatch.setattr(outfile, "_O_TMPFILE", 0)
    return str(request.param)


def test_atomic_file_appears_complete_or_not_at_all(tmp_path: Path, way: str) -> None:
    dest = tmp_path / "f"
    with outfile.atomic_file(str(dest), replace=False) as f:
        f.write(b"one")
        assert not dest.exists()
    assert dest.read_bytes() == b"one" and (dest.stat().st_mode & 0o777) == 0o600
    with pytest.raises(FileExistsError), outfile.atomic_file(str(dest), replace=False) as f:
        f.write(b"two")
    with pytest.raises(RuntimeError), outfile.atomic_file(str(dest), replace=True) as f:
        f.write(b"three")
        raise RuntimeError
    assert dest.read_bytes() == b"one"
    with outfile.atomic_file(str(dest), replace=True) as f:
        f.write(b"four")
    assert dest.read_bytes() == b"four"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_a_system_that_refuses_the_link_through_proc_gets_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_link = os.link

    def link(src: Any, dst: Any, **kwargs: Any) -> None:
        if str(src).startswith("/proc/"):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(os, "link", link)
    for replace in (False, True):
        with outfile.atomic_file(str(tmp_path / "f"), replace=replace) as f:
            f.write(b"x" * 3_000_000 + bytes([replace]))
        assert (tmp_path / "f").read_bytes() == b"x" * 3_000_000 + bytes([replace])
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_a_folder_that_cannot_be_written_is_one_error(tmp_path: Path) -> None:
    with (
        pytest.raises(E.ValidationException, match="cannot write"),
        outfile.atomic_file(str(tmp_path / "missing" / "f"), replace=True),
    ):
        pass

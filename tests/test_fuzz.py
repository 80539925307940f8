"""Fuzzing: whatever comes in, kmsctl answers with a documented exit code and
at most an error line, never exit 70 or a traceback, and never a wrong result.

Through ``kmsctl.cli.run`` in-process (a prepared keyring per area), with a
sample as real processes. Reproducible: hypothesis runs derandomized, without
an example database. Cases in the default run (``CASES``): argv 4000, blobs
2200, encryption contexts 600, config files 1500, sealed files 1700 (10,000
in-process, about a minute of CPU) and 15 real processes.
``KMSCTL_FUZZ_SCALE=10`` runs ten times as many.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest import FAST_KDF, PASSPHRASE, make_keyring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsctl.cli import LazyGroup, cli, run

SCALE = float(os.environ.get("KMSCTL_FUZZ_SCALE", "1"))
CASES = {"argv": 4000, "blobs": 2200, "contexts": 600, "config": 1500, "sealed": 1700, "processes": 15}
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 7, 8}


BATCH = 2  # generated cases per hypothesis example (an example costs ~0.7 ms of its own) where seeded


def fuzz(area: str, batch: int = 1) -> Any:
    return settings(
        max_examples=max(1, int(CASES[area] * SCALE / batch)),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


# ----- running kmsctl -----
@dataclass
class Outcome:
    code: int
    out: bytes
    err: str


@dataclass
class Area:
    """A keyring of its own, its keys and files, for one fuzzed area."""

    home: Path
    passfile: Path
    work: Path
    refs: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def run(self, *args: str, input: bytes = b"") -> Outcome:
        env = {"KMSCTL_HOME": str(self.home), "KMSCTL_PASSPHRASE_FILE": str(self.passfile)}
        with CliRunner().isolation(input=input, env=env) as (out, err, _):  # type: ignore[arg-type]
            code = run(list(args))
        return Outcome(code, out.getvalue(), err.getvalue().decode("utf-8", "replace"))

    def ok(self, *args: str, input: bytes = b"") -> bytes:
        outcome = self.run(*args, input=input)
        assert outcome.code == 0, (args, outcome.err)
        return outcome.out


def sane(outcome: Outcome, args: Any) -> None:
    """The properties every case holds: a documented exit code, no traceback,
    and a failure said in a `kmsctl: Name: message` line (or a usage text)."""
    assert outcome.code != 70, (args, outcome.err)
    assert outcome.code in DOCUMENTED, (args, outcome.code, outcome.err)
    assert "Traceback" not in outcome.err, (args, outcome.err)
    if outcome.code not in (0, 1):
        last = outcome.err.rstrip("\n").rsplit("\n", 1)[-1]
        assert last.startswith("kmsctl: ") or "Usage:" in outcome.err, (args, outcome.err)


@pytest.fixture(autouse=True)
def never_ask_never_costly(monkeypatch: pytest.MonkeyPatch) -> None:
    """No terminal prompt (a developer's terminal would wait), and no costly
    Argon2id from a kdf.* a fuzzed `config set` wrote (the test suite's cheap
    parameters, as the fast_kdf fixture gives init)."""
    from kmsctl import config
    from kmsctl.errors import AccessDeniedException
    from kmsctl.keyring import unlock

    def no_terminal(_text: str) -> str:
        raise AccessDeniedException("no terminal in the fuzz suite")

    real = config.kdf_params

    def cheap(values: Any, default: Any) -> dict[str, int] | None:
        return None if real(values, default) is None else dict(FAST_KDF)

    monkeypatch.setattr(unlock, "terminal_prompt", no_terminal)
    monkeypatch.setattr(config, "kdf_params", cheap)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Files a fuzzed --out or init names land here, not in the checkout."""
    work = tmp_path_factory.mktemp("fuzz-cwd")
    before = os.getcwd()
    os.chdir(work)
    yield work
    os.chdir(before)


def _area(tmp: Path, work: Path) -> Area:
    home = make_keyring(tmp / "home")
    passfile = tmp / "pass"
    passfile.write_text(PASSPHRASE + "\n")
    area = Area(home, passfile, work)
    for alias, args in {
        "sym": [],
        "hmac": ["--key-spec", "HMAC_256"],
        "sig": ["--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY"],
        "ed": ["--key-spec", "ECC_NIST_EDWARDS25519"],
        "agree": ["--key-spec", "ECC_NIST_P256", "--key-usage", "KEY_AGREEMENT"],
        "rsa": ["--key-spec", "RSA_2048", "--key-usage", "ENCRYPT_DECRYPT"],
    }.items():
        key_id = area.ok("-o", "text", "create", "--alias", f"alias/{alias}", *args).decode().strip()
        area.refs[alias] = key_id
    area.refs["arn"] = f"arn:aws:kms:us-east-1:111122223333:key/{area.refs['sym']}"
    message = tmp / "message"
    message.write_bytes(b"a message to sign")
    files = {
        "message": message,
        "ciphertext": tmp / "ct",
        "mac": tmp / "mac",
        "signature": tmp / "sig",
        "pem": tmp / "peer.pem",
        "sealed": tmp / "file.sealed",
    }
    files["ciphertext"].write_bytes(area.ok("encrypt", "-k", "alias/sym", "-c", "app=web", input=b"the plaintext"))
    files["mac"].write_bytes(area.ok("hmac", "-k", "alias/hmac", str(message)))
    files["signature"].write_bytes(area.ok("sign", "-k", "alias/sig", str(message)))
    files["pem"].write_bytes(area.ok("public-key", "alias/agree"))
    plaintext = bytes(range(256)) * 257  # 64 KiB and 256 bytes: two chunks, the last one short
    files["plaintext"] = tmp / "plain"
    files["plaintext"].write_bytes(plaintext)
    area.ok("seal", "-k", "alias/sym", "-c", "db=main", "--out", str(files["sealed"]), str(files["plaintext"]))
    files["small"], files["small-sealed"] = tmp / "small", tmp / "small.sealed"
    files["small"].write_bytes(plaintext[:1000])
    area.ok("seal", "-k", "alias/sym", "--out", str(files["small-sealed"]), str(files["small"]))
    area.files = files
    return area


@pytest.fixture(scope="module")
def area_factory(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> Iterator[Any]:
    """Areas in memory where /dev/shm exists: thousands of small SQLite commits
    cost a third less CPU there than on a disk."""
    memory = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="kmsctl-fuzz-", dir=memory)) if os.access(memory, os.W_OK) else None

    def make(name: str) -> Area:
        if root is None:
            return _area(tmp_path_factory.mktemp(name), workdir)
        (root / name).mkdir()
        return _area(root / name, workdir)

    yield make
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


# ----- strategies -----
def _commands() -> list[tuple[list[str], click.Command]]:
    ctx = click.Context(cli)
    assert isinstance(cli, LazyGroup)
    out: list[tuple[list[str], click.Command]] = []
    for name in cli.list_commands(ctx):
        if name == "help":  # opens man(1): documentation, not input handling
            continue
        # serve listens until stopped (its wire input has its own fuzz, tests/test_server_wire.py);
        # exec replaces the process with CMD (tests/test_exec.py)
        if name in ("serve", "exec"):
            continue
        command = cli.get_command(ctx, name)
        assert command is not None
        out.append(([name], command))
        if isinstance(command, click.Group):
            out.extend(([name, sub], c) for sub, c in command.commands.items())
    return out


COMMANDS = _commands()
GLOBAL = [["-q"], ["-o", "json"], ["-o", "text"], ["-o", "table"], ["--no-color"], ["--debug"]]
WORDS = [
    "SYMMETRIC_DEFAULT", "HMAC_256", "ECC_NIST_P256", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ENCRYPT_DECRYPT",
    "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "RAW", "DIGEST", "EXTERNAL_MU", "ECDSA_SHA_256",
    "ED25519_SHA_512", "ED25519_PH_SHA_512", "ML_DSA_SHAKE_256", "HMAC_SHA_256", "RSAES_OAEP_SHA_256", "AES_256",
    "AES_128", "Enabled", "Disabled", "PendingDeletion", "pem", "der", "jsonl", "cloudtrail", "bash", "zsh", "fish",
    "json", "text", "table", "auto", "output", "color", "session_ttl", "kdf.iterations", "kdf.memory_kib",
    "kdf.lanes", "seal.key", "true", "false", "90s", "15m", "7d", "31d", "0", "-1", "2027-01-01", "alias/",
    "alias/aws/x", "alias/new-1", "alias/my:alias", "-", "nope", ".", "/dev/null", "", "=", "a=b", "--", "-k",
]  # fmt: skip
# characters that break things: controls, quotes, separators, bidi overrides,
# a BOM, line separators, combining marks, astral planes
ALPHABET = (
    list("abcXYZ019 -_=/+.:,;'\"\\@$%{}[]#*?~`")
    + [chr(c) for c in range(32)]
    + list("\x7f\x85\x9b\xa0\xe9\xfc\u0301\u200b\u202e\u2028\ufeff\uffff\u65e5\U0001f600\U0010ffff")
)


class Gen:
    """Inputs from a hypothesis-seeded generator. Drawing each token through
    hypothesis costs about a millisecond; a seeded random.Random is a hundred
    times cheaper, which is what lets 10,000 cases run in the CPU budget. The
    seed comes from hypothesis (derandomized), so every run tries the same
    cases, and a failing case's input is in its assertion message."""

    def __init__(self, rnd: random.Random) -> None:
        self.r = rnd

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def text(self, most: int = 24) -> str:
        n = self.r.randint(0, most)
        if self.chance(0.1):  # anywhere in Unicode but the surrogates
            return "".join(chr(self.r.choice([self.r.randint(0, 0xD7FF), self.r.randint(0xE000, 0x10FFFF)]))
                           for _ in range(n))  # fmt: skip
        return "".join(self.r.choices(ALPHABET, k=n))

    def not_utf8(self, most: int = 12) -> str:
        """Text as Python makes it of bytes that are not UTF-8 (lone surrogates)."""
        raw = self.r.randbytes(self.r.randint(1, most))
        return (self.text(4) + raw.decode("utf-8", "surrogateescape"))[: most + 4]

    def binary(self, most: int) -> bytes:
        return self.r.randbytes(self.r.randint(0, most))

    def value(self, area: Area, data_files: bool = True) -> str:
        kind = self.r.randrange(8)
        if kind == 0:
            return self.r.choice(list(area.refs.values()) + [f"alias/{a}" for a in area.refs if a != "arn"])
        if kind == 1:
            files = [str(area.passfile), "/dev/null", "-", "nope", "."]
            return self.r.choice(files + ([str(p) for p in area.files.values()] if data_files else []))
        if kind == 2:
            return self.r.choice(WORDS)
        if kind == 3:
            return str(self.r.choice([self.r.randint(-5, 5000), self.r.randint(-(2**70), 2**70)]))
        if kind == 4:
            return f"{self.text(8)}={self.text(8)}"
        if kind == 5:
            return self.not_utf8()
        return self.text()

    def argv(self, area: Area) -> tuple[list[str], bytes]:
        path, command = self.r.choice(COMMANDS)
        options = sorted({o for p in command.params if isinstance(p, click.Option) for o in p.opts})
        data_files = path != ["passwd"]  # a new passphrase read from a data file would lock the area out
        args = [a for _ in range(self.r.choice([0, 0, 1, 2])) for a in self.r.choice(GLOBAL)] + path
        for _ in range(self.r.randint(0, 6)):
            args.append(self.r.choice(options) if options and self.chance(0.5) else self.value(area, data_files))
        return args, self.binary(64)

    def mutated(self, raw: bytes) -> bytes:
        kind = self.r.choice(["same", "flip", "truncate", "insert", "append", "random", "replace"])
        if kind == "same" or not raw:
            return raw
        i = self.r.randrange(len(raw))
        if kind == "flip":
            return raw[:i] + bytes([raw[i] ^ (1 << self.r.randrange(8))]) + raw[i + 1 :]
        if kind == "truncate":
            return raw[:i]
        if kind == "insert":
            return raw[:i] + self.r.randbytes(self.r.randint(1, 8)) + raw[i:]
        if kind == "append":
            return raw + self.r.randbytes(self.r.randint(1, 8))
        if kind == "replace":
            return raw[:i] + self.r.randbytes(self.r.randint(1, 4)) + raw[i + 4 :]
        return self.binary(len(raw) + 8)

    def spelling(self, raw: bytes) -> bytes:
        """How a blob can be given: raw, base64 of either alphabet, padded or
        not, with line breaks, and broken variants of those."""
        std, url = base64.b64encode(raw), base64.urlsafe_b64encode(raw)
        kind = self.r.randrange(4)
        if kind == 0:
            return raw
        if kind == 1:
            return self.r.choice([std, url, std.rstrip(b"="), url.rstrip(b"="), std + b"\n", url + b"+/", std + b"=="])
        if kind == 2:
            n = self.r.randint(1, 80)
            return b"\n".join(std[i : i + n] for i in range(0, len(std), n))
        text, i = self.r.choice([std, url]), self.r.randint(0, len(std))
        junk = self.r.choice([self.r.randbytes(self.r.randint(0, 3)), *(bytes([c]) for c in b"=-+/_ \n")])
        return text[:i] + junk + text[i:]

    def toml_value(self, depth: int = 0) -> Any:
        kind = self.r.randrange(9 if depth < 3 else 7)
        if kind == 0:
            return self.chance(0.5)
        if kind == 1:
            return self.r.choice([0, 1, -1, 3, 8, 64, 65, 2**63 - 1, -(2**63), 16 << 20])
        if kind == 2:
            return self.r.choice([0.5, float("inf"), float("nan"), -0.0])
        if kind in (3, 4):
            return self.r.choice(["auto", "json", "table", "1h", "30d", "31d", "90", "alias/sym", "", "true"])
        if kind in (5, 6):
            return self.text(12)
        if kind == 7:
            return [self.toml_value(depth + 1) for _ in range(self.r.randint(0, 3))]
        return {self.r.choice([*KNOWN_KEYS, self.text(6)]): self.toml_value(depth + 1) for _ in range(3)}

    def config_file(self) -> bytes | str:
        kind = self.r.choice(["toml", "toml", "toml", "bytes", "mutated", "nested", "special"])
        if kind == "special":
            return self.r.choice(["fifo", "dir", "zero", "link"])
        if kind == "bytes":
            return self.binary(200)
        if kind == "nested":
            depth = self.r.randint(1, 1500)
            opening, closing = self.r.choice([("[", "]"), ("{a=", "}"), ("[{a=", "}]")])
            return ("output = " + opening * depth + closing * depth + "\n").encode()
        import tomli_w

        doc = {self.r.choice([*KNOWN_KEYS, self.text(6)]): self.toml_value() for _ in range(self.r.randint(0, 4))}
        try:
            text = tomli_w.dumps(doc).encode()
        except (TypeError, ValueError):
            text = b"output = 'json'\n"
        return self.mutated(text) if kind == "mutated" else text


KNOWN_KEYS = ["output", "color", "session_ttl", "kdf", "seal", "kdf.iterations", "kdf.memory_kib", "seal.key", "x"]
SEEDS = st.randoms(use_true_random=True)


def canonical(text: bytes) -> bytes:
    """A base64 spelling with the freedoms kmsctl allows taken out (whitespace,
    padding, the URL-safe alphabet): two spellings of one value are equal here."""
    return b"".join(text.split()).rstrip(b"=").translate(bytes.maketrans(b"-_", b"+/"))


# ----- the fuzzed areas -----
def test_fuzz_argv(area_factory: Any) -> None:
    """Random arguments to every command and subcommand (help aside), global
    options, values from the area's keys and files, text with every kind of
    control character, and bytes that are not UTF-8; random stdin."""
    area = area_factory("argv")

    @fuzz("argv", BATCH)
    @given(rnd=SEEDS)
    def check(rnd: random.Random) -> None:
        for _ in range(BATCH):
            args, stdin = Gen(rnd).argv(area)
            sane(area.run(*args, input=stdin), args)

    check()


def test_fuzz_blobs(area_factory: Any) -> None:
    """Ciphertexts, MACs and signatures mutated and spelled every way, to
    decrypt, re-encrypt, verify-mac and verify: accepted only as the original."""
    area = area_factory("blobs")
    originals = {name: area.files[name].read_bytes() for name in ("ciphertext", "mac", "signature")}
    blob_file, message = area.work / "fuzzed-blob", str(area.files["message"])
    commands = {
        "ciphertext": [
            ["decrypt", "-c", "app=web", str(blob_file)],
            ["decrypt", str(blob_file)],
            ["decrypt", "-k", "alias/sym", "-c", "app=web", str(blob_file)],
            ["decrypt", "-k", "alias/rsa", str(blob_file)],
            ["re-encrypt", "-k", "alias/sym", "--source-context", "app=web", str(blob_file)],
        ],
        "mac": [["verify-mac", "-k", "alias/hmac", "--mac", str(blob_file), message]],
        "signature": [["verify", "-k", "alias/sig", "--signature", str(blob_file), message]],
    }

    @fuzz("blobs")
    @given(rnd=SEEDS)
    def check(rnd: random.Random) -> None:
        gen = Gen(rnd)
        name = rnd.choice(sorted(originals))
        text = gen.spelling(gen.mutated(originals[name]))
        args = rnd.choice(commands[name])
        blob_file.write_bytes(text)
        outcome = area.run(*args)
        sane(outcome, (args, text))
        if outcome.code == 0:  # accepted only as the original, in one of its spellings
            original = originals[name]
            assert text == original or canonical(text) == base64.b64encode(original).rstrip(b"="), text
            if args[0] == "decrypt":
                assert outcome.out == b"the plaintext"

    check()


CONTEXT_TEXT = st.text(st.sampled_from(ALPHABET), max_size=10)
CONTEXT_KEY = st.text(st.sampled_from([c for c in ALPHABET if c != "="]), min_size=1, max_size=10)
NOT_UTF8 = st.binary(min_size=1, max_size=6).map(lambda b: "k" + b.decode("utf-8", "surrogateescape"))
CONTEXTS = st.dictionaries(CONTEXT_KEY | NOT_UTF8, CONTEXT_TEXT | NOT_UTF8, max_size=4)


def test_fuzz_contexts(area_factory: Any) -> None:
    """Encryption contexts (structured, so a failure shrinks to the smallest
    context): what encrypts decrypts with the same context and only with it."""
    area = area_factory("contexts")

    @fuzz("contexts")
    @given(context=CONTEXTS, other=CONTEXTS, plaintext=st.binary(min_size=1, max_size=64))
    def check(context: dict[str, str], other: dict[str, str], plaintext: bytes) -> None:
        flags = [f"--context={k}={v}" for k, v in context.items()]
        made = area.run("encrypt", "-k", "alias/sym", *flags, input=plaintext)
        sane(made, context)
        if made.code != 0:
            assert made.code == 2, made.err
            return
        back = area.run("decrypt", *flags, input=made.out)
        assert (back.code, back.out) == (0, plaintext), back.err
        if other != context:
            wrong = area.run("decrypt", *[f"--context={k}={v}" for k, v in other.items()], input=made.out)
            sane(wrong, other)
            assert wrong.code in (2, 6), wrong.err

    check()


def test_fuzz_config_files(area_factory: Any) -> None:
    """config.toml as random TOML, mutated TOML, random bytes, deep nesting, a
    FIFO, a directory, a link to /dev/zero: a value or one error line, exit 2."""
    area = area_factory("config")
    file = area.home / "config.toml"
    commands = [
        ["config", "list", "--origin"],
        ["config", "get", "output"],
        ["-o", "text", "describe", "alias/sym"],
        ["config", "set", "color", "false"],
        ["seal", "/dev/null"],
    ]

    @fuzz("config", BATCH)
    @given(rnd=SEEDS)
    def check(rnd: random.Random) -> None:
        for _ in range(BATCH):
            one(Gen(rnd).config_file(), rnd.choice(commands))

    def one(content: bytes | str, args: list[str]) -> None:
        if file.is_dir() and not file.is_symlink():
            file.rmdir()
        elif file.exists() or file.is_symlink():
            file.unlink()
        if content == "fifo":
            os.mkfifo(file)
        elif content == "dir":
            file.mkdir()
        elif content in ("zero", "link"):
            file.symlink_to("/dev/zero" if content == "zero" else str(area.files["message"]))
        else:
            assert isinstance(content, bytes)
            file.write_bytes(content)
        outcome = area.run(*args)
        sane(outcome, (args, content))
        assert outcome.code in (0, 2, 3), outcome.err

    check()


def sealed_variant(gen: Gen, original: bytes) -> bytes:
    """Byte-level mutations anywhere, or edits of the header's JSON that keep
    it well formed (so that the checks after parsing are reached too)."""
    if gen.chance(0.5):
        region = gen.r.choice([len(original), 600, 13])  # anywhere, around the header, the fixed part
        return gen.mutated(original[:region]) + original[region:]
    (length,) = struct.unpack(">I", original[9:13])
    fields = json.loads(original[13 : 13 + length])
    fields[gen.r.choice(sorted(fields))] = gen.toml_value() if gen.chance(0.8) else None
    if gen.chance(0.3):
        fields.pop(gen.r.choice(sorted(fields)), None)
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
    return original[:9] + struct.pack(">I", len(body)) + body + original[13 + length :]


def test_fuzz_sealed_files(area_factory: Any) -> None:
    """Mutations of real sealed files to inspect and unseal: only the file
    itself unseals, to exactly its plaintext. Most cases take a one-chunk
    file: naming what is wrong with a damaged 64 KiB chunk can cost 0.2 s
    (up to 4096 trial decryptions, SEALED-FORMAT.md section 5)."""
    area = area_factory("sealed")
    files = {
        "two chunks": (area.files["sealed"].read_bytes(), area.files["plaintext"].read_bytes()),
        "one chunk": (area.files["small-sealed"].read_bytes(), area.files["small"].read_bytes()),
    }
    fuzzed, out = area.work / "fuzzed.sealed", area.work / "unsealed"

    @fuzz("sealed", BATCH)
    @given(rnd=SEEDS)
    def check(rnd: random.Random) -> None:
        for _ in range(BATCH):
            one(rnd)

    def one(rnd: random.Random) -> None:
        original, plaintext = files["two chunks" if rnd.random() < 0.1 else "one chunk"]
        data, command = sealed_variant(Gen(rnd), original), rnd.choice(["inspect", "unseal", "unseal-out"])
        fuzzed.write_bytes(data)
        if command == "inspect":
            args = [rnd.choice(["-o", "--no-color"]), rnd.choice(["json", "text", "table"]), "inspect", str(fuzzed)]
            args = args if args[0] == "-o" else ["-o", args[1], "inspect", str(fuzzed)]
        elif command == "unseal":
            args = ["unseal", str(fuzzed)]
        else:
            args = ["unseal", "--force", "--out", str(out), str(fuzzed)]
        outcome = area.run(*args)
        sane(outcome, (args, data[:80]))
        if command != "inspect" and outcome.code == 0:
            assert data == original  # nothing but the sealed file itself unseals
            assert (out.read_bytes() if command == "unseal-out" else outcome.out) == plaintext

    check()


# ----- a sample as real processes -----
def test_fuzz_argv_as_real_processes(area_factory: Any) -> None:
    """The argv generator's cases through the real console script, where argv
    and the environment really are bytes."""
    area = area_factory("processes")
    exe = Path(sys.executable).with_name("kmsctl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMSCTL_")}
    env.update({"KMSCTL_HOME": str(area.home), "KMSCTL_PASSPHRASE_FILE": str(area.passfile)})

    @fuzz("processes")
    @given(rnd=SEEDS)
    def check(rnd: random.Random) -> None:
        args, stdin = Gen(rnd).argv(area)
        args = [a.replace("\x00", "") for a in args]  # argv cannot hold NUL
        proc = subprocess.run(
            [str(exe), *args], input=stdin, env=env, capture_output=True, timeout=60, check=False, cwd=area.work
        )
        sane(Outcome(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")), args)

    check()

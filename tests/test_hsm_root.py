"""A PKCS#11 token as the keyring's second factor (cli.md section 12, "Root of
trust"; docs/FORMAT.md 2.10), on a fresh SoftHSM2 token per test, through
click's CliRunner (the real error boundary, in-process) and the installed
``kmsctl`` as a subprocess."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Out, run_cli, sql
from hsm import MODULE, SoftToken, empty_conf, softhsm_token

EXE = Path(sys.executable).with_name("kmsctl")


@pytest.fixture
def tok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftToken]:
    from kmsctl.hsm.token import close_all

    t = softhsm_token(tmp_path)
    close_all()
    yield t
    close_all()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def cli(home: Path, *args: str, env: dict[str, str | None] | None = None, passfile: Path | None = None) -> Out:
    """In-process, as its own process would be: the token modules start afresh
    (a SoftHSM2 configuration is read when the module is initialised)."""
    from kmsctl.hsm.token import close_all

    close_all()
    try:
        return run_cli(home, *args, passfile=passfile, env={"KMSCTL_NO_INPUT": "1", **(env or {})})
    finally:
        close_all()


def sub(home: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> Out:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("KMSCTL_", "SOFTHSM2_"))}
    full.update({"KMSCTL_HOME": str(home), "KMSCTL_NO_INPUT": "1", **(env or {})})
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "kmsctl"]
    p = subprocess.run(
        [*cmd, *args], input=input, env=full, capture_output=True, timeout=60, check=False,
        stdin=None if input is not None else subprocess.DEVNULL,
    )  # fmt: skip
    return Out(p.returncode, p.stdout, p.stderr.decode(errors="replace"))


def both(t: SoftToken, passfile: Path | None) -> dict[str, str]:
    """The environment that gives both factors (the PIN from its file)."""
    env = {**t.env, "KMSCTL_PKCS11_PIN_FILE": str(t.pin_file)}
    if passfile is not None:
        env["KMSCTL_PASSPHRASE_FILE"] = str(passfile)
    return env


def init_with_token(home: Path, t: SoftToken, passfile: Path | None, *extra: str) -> Out:
    pp = ["--passphrase-file", str(passfile)] if passfile else ["--no-passphrase"]
    out = cli(home, "init", *pp, "--pkcs11", t.uri, "--pin-file", str(t.pin_file), *extra, env=t.env)
    assert out.code == 0, out.stderr
    return out


def new_key(home: Path, env: dict[str, str]) -> str:
    out = cli(home, "-o", "text", "create", env=dict(env))
    assert out.code == 0, out.stderr
    return out.stdout.decode().strip()


def encrypt(home: Path, key: str, env: dict[str, str], text: bytes = b"attack at dawn") -> bytes:
    out = sub(home, "encrypt", "-k", key, env=env, input=text)
    assert out.code == 0, out.stderr
    return out.stdout


def header(home: Path) -> dict[str, object]:
    (raw,) = sql(home, "SELECT value FROM meta WHERE name = 'header'")[0]
    return dict(json.loads(raw))


def set_header(home: Path, doc: dict[str, object]) -> None:
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    sql(home, "UPDATE meta SET value = ? WHERE name = 'header'", raw)


def assert_no_pin(t: SoftToken, home: Path, *outs: Out) -> None:
    pin = t.pin.encode()
    for out in outs:
        assert pin not in out.stdout and t.pin not in out.stderr
    for path in home.rglob("*"):
        if path.is_file():
            assert pin not in path.read_bytes(), path


# ----- init, use, refusals -----


def test_init_with_token_and_passphrase_then_encrypt_decrypt(home: Path, tok: SoftToken, passfile: Path) -> None:
    out = init_with_token(home, tok, passfile)
    assert f"token {tok.label!r}" in out.stderr and "losing the token" in out.stderr
    h = header(home)
    assert h["version"] == 2 and h["protected"] is True
    stanza = h["pkcs11"]
    assert isinstance(stanza, dict) and stanza["mechanism"] == "AES_KEY_WRAP_PAD"
    assert f"token={tok.label};serial=" in str(stanza["uri"]) and ";id=%" in str(stanza["uri"])
    env = both(tok, passfile)
    key = new_key(home, env)
    blob = encrypt(home, key, env)
    back = sub(home, "decrypt", env=env, input=blob)
    assert (back.code, back.stdout) == (0, b"attack at dawn")


def test_the_token_key_is_sensitive_and_never_extractable(home: Path, tok: SoftToken, passfile: Path) -> None:
    """Read back through python-pkcs11 directly, in a fresh process, outside kmsctl."""
    init_with_token(home, tok, passfile)
    from kmsctl.hsm.uri import parse

    kid = parse(str(dict(header(home)["pkcs11"])["uri"])).id  # type: ignore[call-overload]
    assert kid is not None and len(kid) == 16
    script = (
        "import sys, pkcs11\nfrom pkcs11 import Attribute as A, ObjectClass as OC\n"
        "s = pkcs11.lib(sys.argv[1]).get_token(token_label=sys.argv[2]).open(user_pin=sys.argv[3])\n"
        "(k,) = s.get_objects({A.CLASS: OC.SECRET_KEY, A.ID: bytes.fromhex(sys.argv[4])})\n"
        "print(k[A.EXTRACTABLE], k[A.SENSITIVE], k[A.TOKEN], k[A.LABEL])\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", script, MODULE, tok.label, tok.pin, kid.hex()],
        env={**os.environ, **tok.env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert p.stdout.split()[:3] == ["False", "True", "True"] and p.stdout.split()[3].startswith("kmsctl-root-")


def test_refused_without_the_token_wrong_pin_or_one_factor(
    home: Path, tmp_path: Path, tok: SoftToken, passfile: Path
) -> None:
    init_with_token(home, tok, passfile)
    env = both(tok, passfile)
    key = new_key(home, env)
    blob = encrypt(home, key, env)
    bad_pin = tmp_path / "bad.pin"
    bad_pin.write_text("0000-wrong\n")
    cases = {
        "token absent": {**env, **empty_conf(tmp_path)},
        "wrong PIN": {**env, "KMSCTL_PKCS11_PIN_FILE": str(bad_pin)},
        "passphrase alone": {**tok.env, "KMSCTL_PASSPHRASE_FILE": str(passfile)},
        "token alone": {**tok.env, "KMSCTL_PKCS11_PIN_FILE": str(tok.pin_file)},
    }
    outs = []
    for name, case in cases.items():
        for out in (sub(home, "decrypt", env=case, input=blob), cli(home, "describe", key, env=dict(case))):
            assert out.code == 5, (name, out.stderr)
            assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, (name, out.stderr)
            assert out.stdout == b"", name
            outs.append(out)
    assert f"'{tok.label}'" in outs[0].stderr and "no token" in outs[0].stderr
    assert "wrong PIN" in outs[2].stderr and f"'{tok.label}'" in outs[2].stderr
    assert "no PIN for token" in outs[4].stderr and tok.label in outs[4].stderr
    assert "locked" in outs[6].stderr and "prompting is off" in outs[6].stderr
    assert_no_pin(tok, home, *outs)


def test_another_token_with_the_same_label_does_not_open_a_copied_home(
    home: Path, tmp_path: Path, tok: SoftToken, passfile: Path
) -> None:
    init_with_token(home, tok, passfile)
    key = new_key(home, both(tok, passfile))
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    twin = softhsm_token(tmp_path, label=tok.label, name="twin")  # same label and PIN, another serial
    env = {**both(tok, passfile), **twin.env}
    for out in (sub(copy, "describe", key, env=env), cli(copy, "describe", key, env=dict(env))):
        assert out.code == 5, out.stderr
        assert f"no token labelled '{tok.label}' serial" in out.stderr
    # even in the same configuration as the original token, the twin is not taken for it
    tok.add_token(tok.label)
    out = sub(copy, "describe", key, env=both(tok, passfile))
    assert out.code == 0, out.stderr


def test_token_only_keyring(home: Path, tmp_path: Path, tok: SoftToken, passfile: Path) -> None:
    out = init_with_token(home, tok, None)
    assert "UNPROTECTED" not in out.stderr
    assert header(home)["protected"] is False and header(home)["version"] == 2
    env = {**tok.env, "KMSCTL_PKCS11_PIN_FILE": str(tok.pin_file)}
    key = new_key(home, env)
    blob = encrypt(home, key, env)
    assert sub(home, "decrypt", env=env, input=blob).stdout == b"attack at dawn"
    status = sub(home, "-o", "json", "status", env=tok.env)  # no PIN needed
    assert status.code == 0 and "UNPROTECTED" not in status.stderr
    assert status.json()["State"] == "locked" and status.json()["Token"]["Label"] == tok.label
    # the files alone, or without the token, do not open it
    assert sub(home, "decrypt", env=tok.env, input=blob).code == 5
    assert sub(home, "decrypt", env={**env, **empty_conf(tmp_path)}, input=blob).code == 5
    # a passphrase offered to a keyring without one: a replaced header, refused
    assert sub(home, "decrypt", env={**env, "KMSCTL_PASSPHRASE_FILE": str(passfile)}, input=blob).code == 8
    # removing the only protection is refused
    out = cli(home, "passwd", "--remove-pkcs11", env=dict(env))
    assert out.code == 2 and "UNPROTECTED" in out.stderr


# ----- passwd --add-pkcs11 / --remove-pkcs11 -----


def test_passwd_add_and_remove_token_keeps_the_keys(home: Path, tmp_path: Path, tok: SoftToken, passfile: Path) -> None:
    assert cli(home, "init", "--passphrase-file", str(passfile)).code == 0
    pass_env = {"KMSCTL_PASSPHRASE_FILE": str(passfile)}
    key = new_key(home, pass_env)
    blob = encrypt(home, key, pass_env)
    session = sub(home, "-o", "text", "unlock", env=pass_env).stdout.decode().strip()
    added = sub(home, "passwd", "--add-pkcs11", tok.uri, "--pin-file", str(tok.pin_file), env={**pass_env, **tok.env})
    assert added.code == 0, added.stderr
    assert "every session has ended" in added.stderr
    assert header(home)["version"] == 2
    assert sub(home, "describe", key, env={"KMSCTL_SESSION": session}).code == 5  # sessions ended
    assert sub(home, "decrypt", env=pass_env, input=blob).code == 5  # the passphrase alone no longer opens it
    env = both(tok, passfile)
    assert sub(home, "decrypt", env=env, input=blob).stdout == b"attack at dawn"
    # adding a second token is refused
    again = cli(home, "passwd", "--add-pkcs11", tok.uri, env=dict(env))
    assert again.code == 7 and "already has a token" in again.stderr
    # removal needs the token too
    gone = cli(home, "passwd", "--remove-pkcs11", env={**pass_env, **empty_conf(tmp_path)})
    assert gone.code == 5 and header(home)["version"] == 2
    removed = cli(home, "passwd", "--remove-pkcs11", env=dict(env))
    assert removed.code == 0, removed.stderr
    assert header(home)["version"] == 1 and "pkcs11" not in header(home)
    assert sub(home, "decrypt", env=pass_env, input=blob).stdout == b"attack at dawn"
    assert cli(home, "passwd", "--remove-pkcs11", env=dict(pass_env)).code == 3
    # the audit trail names the token, never the PIN
    trail = cli(home, "-o", "json", "audit", "list", env=dict(pass_env))
    assert trail.code == 0, trail.stderr
    records = [r for r in json.loads(trail.stdout)["Events"] if r["eventName"] == "UpdateRootOfTrust"]
    actions = sorted(r["requestParameters"]["action"] for r in records if r.get("errorCode") is None)
    assert actions == ["AddToken", "RemoveToken"]
    assert all(r["requestParameters"]["token"]["Label"] == tok.label for r in records if r.get("errorCode") is None)
    assert tok.pin not in trail.stdout.decode()
    assert_no_pin(tok, home, added, again, gone, removed, trail)


def test_passwd_changes_the_passphrase_of_a_token_keyring(
    home: Path, tmp_path: Path, tok: SoftToken, passfile: Path
) -> None:
    init_with_token(home, tok, passfile)
    env = both(tok, passfile)
    key = new_key(home, env)
    new = tmp_path / "new.pass"
    new.write_text("another passphrase entirely\n")
    out = cli(home, "passwd", "--new-passphrase-file", str(new), env=dict(env))
    assert out.code == 0, out.stderr
    assert header(home)["version"] == 2
    assert sub(home, "describe", key, env={**env, "KMSCTL_PASSPHRASE_FILE": str(new)}).code == 0
    assert sub(home, "describe", key, env=env).code == 5


# ----- sessions, status, audit at init -----


def test_sessions_work_after_unlock_with_the_token_gone(
    home: Path, tmp_path: Path, tok: SoftToken, passfile: Path
) -> None:
    init_with_token(home, tok, passfile)
    env = both(tok, passfile)
    key = new_key(home, env)
    out = sub(home, "unlock", "--shell", env=env)
    assert out.code == 0, out.stderr
    session = out.stdout.decode().strip().removeprefix("export KMSCTL_SESSION=")
    away = {**empty_conf(tmp_path), "KMSCTL_SESSION": session}
    blob = encrypt(home, key, away)
    assert sub(home, "decrypt", env=away, input=blob).stdout == b"attack at dawn"
    status = sub(home, "-o", "json", "status", env=away)
    assert status.json()["State"] == "unlocked"
    # unlock itself needs both factors
    assert sub(home, "unlock", env={**away, "KMSCTL_PASSPHRASE_FILE": str(passfile)}).code == 5
    assert_no_pin(tok, home, out, status)


def test_status_shows_the_token_without_its_pin(home: Path, tok: SoftToken, passfile: Path) -> None:
    init_with_token(home, tok, passfile)
    text = sub(home, "-o", "text", "status", env=tok.env)
    assert text.code == 0, text.stderr
    assert f"{tok.label} (serial " in text.stdout.decode() and MODULE in text.stdout.decode()
    js = cli(home, "-o", "json", "status")
    assert js.code == 0
    token = js.json()["Token"]
    assert token["Label"] == tok.label and len(token["Serial"]) == 16 and token["Module"] == MODULE
    assert token["Uri"].startswith(f"pkcs11:token={tok.label};serial={token['Serial']};object=kmsctl-root-")
    plain = cli(home, "-o", "json", "init", "--passphrase-file", str(passfile), "--home", str(home.parent / "plain"))
    assert plain.code == 0
    assert cli(home.parent / "plain", "-o", "json", "status").json()["Token"] is None


def test_init_is_audited_with_the_token(home: Path, tok: SoftToken, passfile: Path) -> None:
    init_with_token(home, tok, passfile)
    trail = sub(home, "-o", "json", "audit", "list", env=both(tok, passfile))
    assert trail.code == 0, trail.stderr
    (record,) = [r for r in trail.json()["Events"] if r["eventName"] == "UpdateRootOfTrust"]
    assert record["requestParameters"]["action"] == "InitToken"
    assert record["requestParameters"]["token"]["Label"] == tok.label
    assert tok.pin not in trail.stdout.decode()


# ----- bad input -----


def test_pin_never_on_the_command_line(home: Path, tok: SoftToken, passfile: Path) -> None:
    out = cli(
        home, "init", "--passphrase-file", str(passfile), "--pkcs11", f"{tok.uri}&pin-value={tok.pin}", env=tok.env
    )
    assert out.code == 2 and "pin-value is refused" in out.stderr and tok.pin not in out.stderr
    assert not (home / "keyring.db").exists()
    for flag in ("--pin", "--pkcs11-pin"):
        bad = cli(home, "init", flag, tok.pin)
        assert bad.code == 2 and tok.pin not in bad.stderr


def test_bad_uri_and_missing_module_are_refused_before_anything_is_made(
    home: Path, tmp_path: Path, tok: SoftToken, passfile: Path
) -> None:
    out = cli(home, "init", "--passphrase-file", str(passfile), "--pkcs11", "pkcs11:token=a b")
    assert out.code == 2 and "percent-encoded" in out.stderr and not (home / "keyring.db").exists()
    out = cli(home, "init", "--passphrase-file", str(passfile), "--pkcs11", f"pkcs11:token={tok.label}", env=tok.env)
    assert out.code == 2 and "no PKCS#11 module" in out.stderr
    missing = f"pkcs11:token={tok.label}?module-path={tmp_path}/nope.so"
    out = cli(home, "init", "--passphrase-file", str(passfile), "--pkcs11", missing, "--pin-file", str(tok.pin_file))
    assert out.code == 5 and "cannot be loaded" in out.stderr and not (home / "keyring.db").exists()
    # the module from config (pkcs11.module via KMSCTL_PKCS11_MODULE) and the token label from pkcs11.token
    env = {**tok.env, "KMSCTL_PKCS11_MODULE": MODULE}
    assert cli(home, "config", "set", "pkcs11.token", tok.label).code == 0
    out = cli(
        home,
        "init",
        "--passphrase-file",
        str(passfile),
        "--pkcs11",
        "pkcs11:",
        "--pin-file",
        str(tok.pin_file),
        env=env,
    )
    assert out.code == 0, out.stderr
    origin = cli(home, "config", "list", "--origin", env=env).stdout.decode()
    assert "pkcs11.module" in origin and "pkcs11.token" in origin


@pytest.mark.parametrize(
    ("edit", "code", "words"),
    [
        ("wrapped_share", 5, "does not unwrap this keyring's share"),
        ("serial", 5, "no token"),
        ("id", 5, "has no key with id"),
        ("mechanism", 8, "token mechanism"),
        ("uri", 8, "token URI"),
        ("drop stanza", 8, "damaged"),
        ("drop stanza and version 1", 5, "wrong passphrase"),
        ("version 3", 8, "version 3 is not one this kmsctl reads (1, 2)"),
    ],
)
def test_header_edits_of_the_stanza(
    home: Path, tok: SoftToken, passfile: Path, edit: str, code: int, words: str
) -> None:
    init_with_token(home, tok, passfile)
    h = header(home)
    stanza = dict(h["pkcs11"])  # type: ignore[call-overload]
    if edit == "wrapped_share":
        raw = bytearray(base64.b64decode(stanza["wrapped_share"]))
        raw[5] ^= 1
        stanza["wrapped_share"] = base64.b64encode(bytes(raw)).decode()
    elif edit == "serial":
        stanza["uri"] = stanza["uri"].replace(";serial=", ";serial=0")
    elif edit == "id":
        stanza["uri"] = stanza["uri"].replace(";id=%", ";id=%00%")
    elif edit == "mechanism":
        stanza["mechanism"] = "AES_KEY_WRAP"
    elif edit == "uri":
        stanza["uri"] = "pkcs11:token=x"
    h["pkcs11"] = stanza
    if edit.startswith("drop stanza"):
        del h["pkcs11"]
    if edit.endswith("version 1"):
        h["version"] = 1
    if edit == "version 3":
        h["version"] = 3
    set_header(home, h)
    for out in (sub(home, "list", env=both(tok, passfile)), cli(home, "list", env=both(tok, passfile))):
        assert out.code == code, out.stderr
        assert words in out.stderr and "Traceback" not in out.stderr


def test_format_vector_matches_the_code() -> None:
    """docs/FORMAT.md 2.10's worked example, from the code and from the text."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from kmsctl.crypto import primitives as P
    from kmsctl.keyring.header import _mk_aad, token_kek

    doc = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text()
    section = doc[doc.index("### 2.10") : doc.index("## 3.")]
    values = dict(
        line.strip().split(None, 1) for line in section.split("```text")[1].split("```")[0].strip().splitlines()
    )
    k_pass, share = bytes.fromhex(values["K_pass"]), bytes.fromhex(values["S"])
    keyring_id = values["keyring_id"]
    kek = token_kek(k_pass, share, keyring_id)
    assert kek.hex() == values["KEK"]
    by_text = HKDF(hashes.SHA256(), 32, salt=None, info=b"kmsctl master key v2\x00" + keyring_id.encode()).derive(
        k_pass + share
    )
    assert by_text == kek
    kdf, stanza = json.loads(values["kdf"]), json.loads(values["pkcs11"])
    aad = _mk_aad({"keyring_id": keyring_id, "protected": True, "kdf": kdf, "pkcs11": stanza})

    def canonical(doc: object) -> bytes:
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    by_text_aad = b"kmsctl master key v1\x00" + keyring_id.encode() + b"\x01" + canonical(kdf)
    assert aad == by_text_aad + b"\x00pkcs11" + canonical(stanza)
    nonce, mk = bytes.fromhex(values["nonce"]), bytes.fromhex(values["MK"])
    sealed = AESGCM(kek).encrypt(nonce, mk, aad)
    assert sealed.hex() == values["wrapped"]
    assert P.gcm_open(kek, nonce, sealed, aad) == mk

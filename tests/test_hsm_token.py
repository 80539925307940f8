"""kmsctl.hsm: RFC 7512 URIs, PIN sources, and token operations on SoftHSM2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hsm import MODULE, SoftToken, softhsm_token, token_fixture  # noqa: F401 (the token fixture)

from kmsctl.errors import AccessDeniedException, ValidationException
from kmsctl.hsm import uri as U
from kmsctl.hsm.pin import read_pin

# ----- URIs -----


def test_uri_parses_path_and_query_attributes() -> None:
    u = U.parse("pkcs11:token=my%20token;serial=abc123;object=root;id=%01%FF?module-path=/usr/lib/x.so")
    assert (u.token, u.serial, u.object, u.id, u.module_path) == (
        "my token",
        "abc123",
        "root",
        b"\x01\xff",
        "/usr/lib/x.so",
    )
    assert u.manufacturer is None and u.model is None and u.pin_source is None


def test_uri_text_is_canonical_and_round_trips() -> None:
    u = U.parse("pkcs11:object=k;token=a%3bb;model=M?module-path=/p/lib.so")
    text = u.text()
    assert text == "pkcs11:token=a%3Bb;model=M;object=k?module-path=/p/lib.so"
    assert U.parse(text) == u
    with_obj = u.with_object("kmsctl-root", b"\x00\x10 A")
    assert with_obj.text() == "pkcs11:token=a%3Bb;model=M;object=kmsctl-root;id=%00%10%20%41?module-path=/p/lib.so"
    assert U.parse(with_obj.text()).id == b"\x00\x10 A"


def test_uri_utf8_and_reserved_characters_are_percent_encoded() -> None:
    u = U.TokenUri(token="jeton é;?", module_path="/a b/lib.so")
    assert u.text() == "pkcs11:token=jeton%20%C3%A9%3B%3F?module-path=/a%20b/lib.so"
    assert U.parse(u.text()) == u


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("pkcs12:token=a", "does not start"),
        ("pkcs11:token=a b", "must be percent-encoded"),
        ("pkcs11:token=%4", "two hex digits"),
        ("pkcs11:token=%zz", "two hex digits"),
        ("pkcs11:token=a;token=b", "twice"),
        ("pkcs11:token=", "empty"),
        ("pkcs11:token", "name=value"),
        ("pkcs11:slot-id=3", "not supported"),
        ("pkcs11:frobnicate=1", "not supported"),
        ("pkcs11:token=a?module-name=softhsm2", "not supported"),
        ("pkcs11:token=%FF", "not UTF-8"),
        ("pkcs11:token=a?pin-source=|/bin/pinentry", "file:"),
    ],
)
def test_uri_rejects(text: str, words: str) -> None:
    with pytest.raises(ValidationException, match=words) as info:
        U.parse(text)
    assert info.value.exit_code == 2


def test_uri_refuses_pin_value_and_names_pin_file() -> None:
    with pytest.raises(ValidationException) as info:
        U.parse("pkcs11:token=a?pin-value=1234")
    assert "pin-value" in info.value.message and "1234" not in info.value.message
    assert "--pin-file" in (info.value.hint or "")


def test_uri_pin_source_file() -> None:
    assert U.pin_file(U.parse("pkcs11:token=a?pin-source=file:/run/pin")) == "/run/pin"
    assert U.pin_file(U.parse("pkcs11:token=a?pin-source=file:///run/pin")) == "/run/pin"


def test_uri_module_and_token_defaults() -> None:
    bare = U.parse("pkcs11:object=x")
    assert U.resolved(bare, module="/m.so", token="t", env={}).text() == "pkcs11:token=t;object=x?module-path=/m.so"
    assert U.resolved(bare, env={"KMSCTL_PKCS11_MODULE": "/e.so"}).module_path == "/e.so"
    assert U.resolved(U.parse("pkcs11:token=u?module-path=/u.so"), module="/m.so", token="t", env={}).token == "u"
    with pytest.raises(ValidationException, match="no PKCS#11 module"):
        U.resolved(bare, env={})


# ----- PINs -----


def test_pin_sources_in_order(tmp_path: Path) -> None:
    f = tmp_path / "pin"
    f.write_text("from-file\n")
    env = {"KMSCTL_PKCS11_PIN_FILE": str(f), "KMSCTL_PKCS11_PIN": "from-env"}
    assert read_pin(None, prompt_ok=False, what="t", env=env) == b"from-file"
    other = tmp_path / "other"
    other.write_text("flag\r\n")
    assert read_pin(str(other), prompt_ok=False, what="t", env=env) == b"flag"
    assert read_pin(None, prompt_ok=False, what="t", env={"KMSCTL_PKCS11_PIN": "from-env\n"}) == b"from-env"
    assert read_pin(None, prompt_ok=True, what="t", env={}, prompt=lambda _t: "typed") == b"typed"


def test_pin_missing_is_exit_5_naming_the_sources(tmp_path: Path) -> None:
    with pytest.raises(AccessDeniedException) as info:
        read_pin(None, prompt_ok=False, what="'tok'", env={})
    assert info.value.exit_code == 5
    assert "'tok'" in info.value.message and "KMSCTL_PKCS11_PIN_FILE" in info.value.message


def test_pin_file_readable_by_others_warns(tmp_path: Path) -> None:
    f = tmp_path / "pin"
    f.write_text("1234\n")
    f.chmod(0o644)
    warnings: list[str] = []
    assert read_pin(str(f), prompt_ok=False, what="t", env={}, warn=warnings.append) == b"1234"
    assert len(warnings) == 1 and "PIN file" in warnings[0] and "1234" not in warnings[0]


# ----- tokens -----


def _open(t: SoftToken, pin: str | None = None):  # type: ignore[no-untyped-def]
    from kmsctl.hsm.token import open_token

    return open_token(U.parse(t.uri), (pin or t.pin).encode())


def test_token_round_trip_and_attributes(token: SoftToken) -> None:
    from kmsctl.crypto.primitives import AuthenticationFailed

    tok = _open(token)
    assert tok.label == token.label and len(tok.serial) == 16
    assert _open(token) is tok  # one session per token per process
    kid = os.urandom(16)
    assert not tok.has_key(kid)
    tok.generate_aes_key("kmsctl-test-key", kid)
    assert tok.has_key(kid)
    assert tok.attributes(kid) == {"extractable": False, "sensitive": True, "token": True}
    secret = os.urandom(32)
    wrapped = tok.wrap(kid, secret)
    assert len(wrapped) == 40 and secret not in wrapped
    assert tok.unwrap(kid, wrapped) == secret
    with pytest.raises(AuthenticationFailed):
        tok.unwrap(kid, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    nonce = os.urandom(12)
    ct = tok.gcm_encrypt(kid, nonce, b"hello", b"ctx")
    assert len(ct) == 5 + 16
    assert tok.gcm_decrypt(kid, nonce, ct, b"ctx") == b"hello"
    with pytest.raises(AuthenticationFailed):
        tok.gcm_decrypt(kid, nonce, ct, b"other ctx")
    with pytest.raises(AuthenticationFailed):
        tok.gcm_decrypt(kid, nonce, ct[:-1] + bytes([ct[-1] ^ 1]), b"ctx")
    tok.destroy_key(kid)
    assert not tok.has_key(kid)
    tok.destroy_key(kid)  # missing: no error
    from kmsctl.hsm.token import TokenError

    with pytest.raises(TokenError) as info:
        tok.wrap(kid, secret)
    assert info.value.reason == "key_missing" and kid.hex() in info.value.message


# read back outside kmsctl: python-pkcs11 directly, in a fresh process
_READ_BACK = """
import sys, pkcs11
from pkcs11 import Attribute as A, ObjectClass as OC
lib = pkcs11.lib(sys.argv[1])
s = lib.get_token(token_label=sys.argv[2]).open(user_pin=sys.argv[3])
(k,) = s.get_objects({A.CLASS: OC.SECRET_KEY, A.ID: bytes.fromhex(sys.argv[4])})
print(k[A.EXTRACTABLE], k[A.SENSITIVE], k[A.TOKEN], k[A.KEY_TYPE].name, k[A.VALUE_LEN])
try:
    k[A.VALUE]
    print("VALUE READABLE")
except pkcs11.exceptions.AttributeSensitive:
    print("value sensitive")
"""


def test_token_key_attributes_read_back_with_python_pkcs11(token: SoftToken) -> None:
    from kmsctl.hsm.token import close_all

    kid = os.urandom(8)
    _open(token).generate_aes_key("made-by-kmsctl", kid)
    close_all()
    out = subprocess.run(
        [sys.executable, "-c", _READ_BACK, MODULE, token.label, token.pin, kid.hex()],
        env={**os.environ, **token.env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split("\n")
    assert out[0] == "False True True AES 32"
    assert out[1] == "value sensitive"


def test_token_errors_have_reasons(tmp_path: Path, token: SoftToken) -> None:
    from kmsctl.hsm.token import TokenError, close_all, open_token

    def reason(text: str, pin: str = token.pin) -> TokenError:
        close_all()
        with pytest.raises(TokenError) as info:
            open_token(U.parse(text), pin.encode())
        assert pin not in info.value.message and info.value.exit_code == 5
        return info.value

    missing = reason(f"pkcs11:token=nope?module-path={MODULE}")
    assert missing.reason == "token" and "'nope'" in missing.message
    serial = reason(f"pkcs11:token={token.label};serial=0000?module-path={MODULE}")
    assert serial.reason == "token" and "'0000'" in serial.message
    module = reason(f"pkcs11:token={token.label}?module-path={tmp_path}/none.so")
    assert module.reason == "module" and "cannot be loaded" in module.message
    (tmp_path / "bad.so").write_text("not a library")
    assert reason(f"pkcs11:token={token.label}?module-path={tmp_path}/bad.so").reason == "module"
    wrong = reason(token.uri, pin="0000-wrong")
    assert wrong.reason == "pin_incorrect" and token.label in wrong.message


def test_token_wrong_pin_after_a_good_one_in_the_same_process(token: SoftToken) -> None:
    """The session cache never lets a different PIN through unchecked."""
    from kmsctl.hsm.token import TokenError

    _open(token)
    with pytest.raises(TokenError) as info:
        _open(token, pin="0000-wrong")
    assert info.value.reason == "pin_incorrect"
    assert _open(token).label == token.label


def test_token_locked_pin(token: SoftToken, monkeypatch: pytest.MonkeyPatch) -> None:
    """A locked PIN (CKR_PIN_LOCKED) has its own reason and message. SoftHSM
    2.6 never locks its user PIN, so the token's answer is simulated here."""
    import pkcs11

    from kmsctl.hsm import token as T

    class Locked:
        label = token.label

        def open(self, **_kw: object) -> None:
            raise pkcs11.exceptions.PinLocked()

    monkeypatch.setattr(T, "_find_token", lambda *_a: (Locked(), "0123456789abcdef"))
    with pytest.raises(T.TokenError) as info:
        _open(token)
    assert info.value.reason == "pin_locked" and "locked" in info.value.message
    assert token.label in info.value.message and token.pin not in info.value.message


def test_missing_python_pkcs11_is_exit_2_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from kmsctl.hsm.token import TokenError, open_token

    monkeypatch.setitem(sys.modules, "pkcs11", None)
    with pytest.raises(TokenError) as info:
        open_token(U.parse(f"pkcs11:token=x?module-path={MODULE}"), b"1")
    assert info.value.exit_code == 2 and "kmsctl[pkcs11]" in (info.value.hint or "")


def test_hsm_uri_and_pin_do_not_import_pkcs11() -> None:
    code = "import sys\nimport kmsctl.hsm.uri, kmsctl.hsm.pin, kmsctl.hsm.token\nprint('pkcs11' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"

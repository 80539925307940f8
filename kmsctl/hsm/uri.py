"""RFC 7512 PKCS#11 URIs: ``pkcs11:token=kmsctl;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so``.

Pure parsing and printing, no python-pkcs11. kmsctl refuses ``pin-value``: a
PIN in a URI ends up in argv, shell history and config files.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace

from kmsctl.errors import ValidationException

SCHEME = "pkcs11:"
# RFC 7512 section 2.3: pk11-pchar and pk11-qchar (besides percent-encoded octets)
_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_PCHAR = frozenset(_UNRESERVED + ":[]@!$'()*+,=&")
_QCHAR = frozenset(_UNRESERVED + ":[]@!$'()*+,=/?|")
# path attributes kmsctl reads, in the order text() prints them; the RFC's
# others (library-*, slot-*, type) are refused rather than silently ignored
_PATH = ("token", "manufacturer", "model", "serial", "object", "id")
_QUERY = ("module-path", "pin-source")
PIN_HINT = "give the PIN with --pin-file F, KMSCTL_PKCS11_PIN_FILE or KMSCTL_PKCS11_PIN"
NO_MODULE = "no PKCS#11 module: add ?module-path=... to the URI or set pkcs11.module"


@dataclass(frozen=True)
class TokenUri:
    module_path: str | None = None  # query attribute module-path
    token: str | None = None  # path attribute token (the token label)
    serial: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    object: str | None = None  # CKA_LABEL
    id: bytes | None = None  # CKA_ID
    pin_source: str | None = None  # file: path only

    def text(self) -> str:
        """The canonical form: attributes in a fixed order, percent-encoded
        where RFC 7512 requires it, the id always as %XX octets."""
        path = []
        for name in _PATH:
            value = getattr(self, name)
            if value is None:
                continue
            raw = value if isinstance(value, bytes) else value.encode()
            path.append(f"{name}={_encode(raw, _PCHAR, every=name == 'id')}")
        query = []
        for name in _QUERY:
            value = getattr(self, name.replace("-", "_"))
            if value is not None:
                query.append(f"{name}={_encode(value.encode(), _QCHAR)}")
        return SCHEME + ";".join(path) + ("?" + "&".join(query) if query else "")

    def with_object(self, label: str, id: bytes) -> TokenUri:
        return replace(self, object=label, id=id)

    def describe(self) -> str:
        """How messages name the token: its label, and serial when known."""
        name = repr(self.token) if self.token is not None else "(any)"
        return f"{name} (serial {self.serial})" if self.serial else name


def _encode(raw: bytes, allowed: frozenset[str], every: bool = False) -> str:
    out = []
    for b in raw:
        c = chr(b)
        out.append(c if not every and c in allowed and b < 0x80 else f"%{b:02X}")
    return "".join(out)


def _decode(text: str, allowed: frozenset[str], what: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or any(ch not in string.hexdigits for ch in pair):
                raise _bad(f"{what}: '%' must be followed by two hex digits")
            out.append(int(pair, 16))
            i += 3
            continue
        if c not in allowed:
            raise _bad(f"{what}: character {c!r} must be percent-encoded")
        out.append(ord(c))
        i += 1
    return bytes(out)


def _bad(message: str) -> ValidationException:
    return ValidationException(
        f"PKCS#11 URI: {message}",
        hint="see RFC 7512; e.g. pkcs11:token=kmsctl?module-path=/usr/lib/softhsm/libsofthsm2.so",
    )


def _text_value(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise _bad(f"{what} is not UTF-8") from None


def _attributes(part: str, sep: str, allowed: frozenset[str], known: tuple[str, ...]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if not part:
        return found
    for item in part.split(sep):
        name, eq, value = item.partition("=")
        if name == "pin-value":
            raise ValidationException(
                "PKCS#11 URI: pin-value is refused (a PIN in a URI ends up in argv and config files)", hint=PIN_HINT
            )
        if not eq or not name:
            raise _bad(f"{item!r} is not name=value")
        if name not in known:
            raise _bad(f"attribute {name!r} is not supported (kmsctl reads {', '.join(known)})")
        if name in found:
            raise _bad(f"attribute {name!r} is given twice")
        decoded = _decode(value, allowed, name)
        if not decoded:
            raise _bad(f"attribute {name!r} is empty")
        found[name] = decoded
    return found


def parse(uri: str) -> TokenUri:
    """An RFC 7512 URI; ValidationException (exit 2) for anything else."""
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise _bad(f"{uri!r} does not start with {SCHEME!r}")
    body = uri[len(SCHEME) :]
    path_part, _, query_part = body.partition("?")
    path = _attributes(path_part, ";", _PCHAR, _PATH)
    query = _attributes(query_part, "&", _QCHAR, _QUERY)
    texts = {name: _text_value(value, name) for name, value in path.items() if name != "id"}
    pin_source = _text_value(query["pin-source"], "pin-source") if "pin-source" in query else None
    if pin_source is not None and not pin_source.startswith("file:"):
        raise _bad("pin-source must be a file: (file:/path/to/pin)")
    module = _text_value(query["module-path"], "module-path") if "module-path" in query else None
    return TokenUri(
        module_path=module,
        token=texts.get("token"),
        serial=texts.get("serial"),
        manufacturer=texts.get("manufacturer"),
        model=texts.get("model"),
        object=texts.get("object"),
        id=path.get("id"),
        pin_source=pin_source,
    )


def pin_file(uri: TokenUri) -> str | None:
    """The file a ``pin-source=file:...`` names (``file:///p`` and ``file:/p`` alike)."""
    if uri.pin_source is None:
        return None
    path = uri.pin_source[len("file:") :]
    return path[2:] if path.startswith("//") else path


def resolved(
    uri: TokenUri, *, module: str | None = None, token: str | None = None, env: Mapping[str, str] | None = None
) -> TokenUri:
    """The URI with its module and token filled in where it has none: the
    module from ``module`` (config pkcs11.module), else KMSCTL_PKCS11_MODULE;
    the token label from ``token`` (config pkcs11.token)."""
    env = os.environ if env is None else env
    module_path = uri.module_path or module or env.get("KMSCTL_PKCS11_MODULE") or None
    if not module_path:
        raise ValidationException(NO_MODULE, hint="e.g. /usr/lib/softhsm/libsofthsm2.so for SoftHSM2")
    if uri.token is None and uri.serial is None and token:
        uri = replace(uri, token=token)
    return replace(uri, module_path=module_path)

"""Generate tests/vectors/sealed_v1.json from kmsctl's own code.

    .venv/bin/python tests/vectors/generate_sealed.py > tests/vectors/sealed_v1.json

Valid files come from ``kmsctl.crypto.sealed.write_sealed`` with a fixed data
key and salt, so the output is deterministic and tests/test_sealed_vectors.py
can check that the file is still what the code makes. Invalid files are valid
ones mutated (or built by a deliberately non-conforming writer); each carries
the failure written here by hand, and ``build`` refuses to emit a case the
reader does not fail in exactly that way. The format is docs/SEALED-FORMAT.md;
section 9 describes this file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsctl import errors as E
from kmsctl.crypto import sealed

DATA_KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
SALT = bytes(range(32, 64))
KEY_ID = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EDK = b"\xa9\x01" + bytes(range(2, 110))  # opaque here: only Decrypt reads it
BASE_TEXT = b"hello, sealed world"  # 19 bytes: chunks of 8, 8 and 3 at ChunkSize 8
AUTH = "InvalidCiphertextException"
NOT_SEALED = "ValidationException"
HEADER = "sealed file header fails authentication"


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def make(plaintext: bytes, *, context: dict[str, str] | None = None, chunk_size: int = 8, **kw: Any) -> bytes:
    out = io.BytesIO()
    sealed.write_sealed(
        io.BytesIO(plaintext),
        out,
        key_id=kw.get("key_id", KEY_ID),
        context={"app": "docs"} if context is None else context,
        encrypted_data_key=EDK,
        data_key=kw.get("data_key", DATA_KEY),
        salt=kw.get("salt", SALT),
        chunk_size=chunk_size,
    )
    return out.getvalue()


def open_sealed(data: bytes, data_key: bytes) -> tuple[bytes, E.KMSError | None]:
    """What a streaming reader releases, and how it fails (None: it does not)."""
    out = io.BytesIO()
    try:
        src = io.BytesIO(data)
        sealed.Opener(sealed.read_header(src), data_key).stream(src, out)
    except E.KMSError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


# ----- valid -----
def _valid(name: str, plaintext: bytes, *, large: bool = False, **kw: Any) -> dict[str, Any]:
    data = make(plaintext, **kw)
    case: dict[str, Any] = {
        "name": name,
        "data_key": kw.get("data_key", DATA_KEY).hex(),
        "salt": kw.get("salt", SALT).hex(),
        "key_id": kw.get("key_id", KEY_ID),
        "context": kw.get("context", {"app": "docs"}),
        "encrypted_data_key": EDK.hex(),
        "chunk_size": kw.get("chunk_size", 8),
    }
    if large:
        case.update(
            plaintext_pattern="i mod 251",
            plaintext_size=len(plaintext),
            sealed_size=len(data),
            sealed_sha256=hashlib.sha256(data).hexdigest(),
        )
    else:
        case.update(plaintext=plaintext.hex(), sealed=data.hex())
    released, error = open_sealed(data, kw.get("data_key", DATA_KEY))
    assert error is None and released == plaintext, (name, error)
    return case


def valid_cases() -> list[dict[str, Any]]:
    d = sealed.CHUNK_SIZE
    return [
        _valid("three chunks of 8 (the reference vector)", BASE_TEXT),
        _valid("empty plaintext: one empty last chunk", b"", context={}, chunk_size=d),
        _valid("one byte", b"\x00", context={}, chunk_size=d),
        _valid("hello at the default chunk size", b"hello", chunk_size=d),
        _valid("exactly one full chunk", pattern(16), chunk_size=16),
        _valid("exactly two full chunks", pattern(32), chunk_size=16),
        _valid("two full chunks and one byte", pattern(33), chunk_size=16),
        _valid("ChunkSize 1", b"abc", chunk_size=1),
        _valid(
            "context unsorted, non-ASCII and escapes",
            b"x",
            context={"z": "\U0001f600", "\u00e9t\u00e9": "\u00fc", "a": 'quote " back \\ tab \t nl \n'},
        ),
        _valid("another data key, salt and key ID", b"other", data_key=OTHER_KEY, salt=bytes(32), key_id="k"),
        _valid("default chunk size minus one", pattern(d - 1), large=True, chunk_size=d),
        _valid("default chunk size", pattern(d), large=True, chunk_size=d),
        _valid("default chunk size plus one", pattern(d + 1), large=True, chunk_size=d),
        _valid("five chunks and seven bytes", pattern(5 * d + 7), large=True, chunk_size=d),
    ]


# ----- invalid -----
def _split(data: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """-> (fixed 13 bytes, header JSON, commitment, MAC, body)."""
    (length,) = struct.unpack(">I", data[9:13])
    h = 13 + length
    return data[:13], data[13:h], data[h : h + 32], data[h + 32 : h + 64], data[h + 64 :]


def _with_header(data: bytes, fields: Callable[[dict[str, Any]], Any] | None = None, raw: bytes | None = None) -> bytes:
    """Replace the header (the length follows it; commitment, MAC and body stay)."""
    fixed, header, commitment, mac, body = _split(data)
    if raw is None:
        obj = json.loads(header)
        fields = fields or (lambda o: o)
        raw = sealed.canonical_json(fields(obj) or obj)
    return fixed[:9] + struct.pack(">I", len(raw)) + raw + commitment + mac + body


def _remac(data: bytes, commitment: bytes) -> bytes:
    """A header whose MAC is right (made with the data key) but whose commitment is not."""
    fixed, header, _, _, body = _split(data)
    _, header_key, _ = sealed.derive_keys(DATA_KEY, SALT)
    signed = fixed + header + commitment
    h = hmac.HMAC(header_key, hashes.SHA256())
    h.update(signed)
    return signed + h.finalize() + body


def _chunks(data: bytes, chunk_size: int = 8) -> tuple[bytes, list[bytes]]:
    fixed, header, commitment, mac, body = _split(data)
    block = chunk_size + 16
    return fixed + header + commitment + mac, [body[i : i + block] for i in range(0, len(body), block)]


def _nonconforming(pieces: list[tuple[bytes, bool]], chunk_size: int = 8) -> bytes:
    """A writer that breaks section 4's rules: each (plaintext, last flag) as given."""
    preamble, _ = _chunks(make(b"", chunk_size=chunk_size), chunk_size)
    payload_key, _, _ = sealed.derive_keys(DATA_KEY, SALT)
    aead = AESGCM(payload_key)
    return preamble + b"".join(aead.encrypt(sealed.nonce(i, last), p, None) for i, (p, last) in enumerate(pieces))


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def invalid_cases() -> list[dict[str, Any]]:
    base = make(BASE_TEXT)
    preamble, (c0, c1, c2) = _chunks(base)
    two = make(pattern(32), chunk_size=16)
    two_pre, (t0, _) = _chunks(two, 16)
    fixed, header, *_ = _split(base)
    h = len(fixed) + len(header)
    b64 = base64.b64encode
    cases: list[tuple[str, bytes, str, str, bytes]] = [
        ("empty input", b"", NOT_SEALED, "not a kmsctl sealed file", b""),
        ("magic: first byte changed", _flip(base, 0), NOT_SEALED, "not a kmsctl sealed file", b""),
        ("magic: a ciphertext blob instead", EDK, NOT_SEALED, "not a kmsctl sealed file", b""),
        ("version 2", base[:8] + b"\x02" + base[9:], NOT_SEALED, "unsupported sealed file version 2", b""),
        ("version 0", base[:8] + b"\x00" + base[9:], NOT_SEALED, "unsupported sealed file version 0", b""),
        ("version 255, nothing after it", base[:8] + b"\xff", NOT_SEALED, "unsupported sealed file version 255", b""),
        ("magic only", base[:8], AUTH, f"{HEADER}: the input ends inside the header", b""),
        ("truncated inside the length", base[:11], AUTH, f"{HEADER}: the input ends inside the header", b""),
        ("header length 0", base[:9] + bytes(4) + base[13:], AUTH, f"{HEADER}: header length 0 is out of range", b""),
        (
            "header length 65537",
            base[:9] + struct.pack(">I", 65537) + base[13:],
            AUTH,
            f"{HEADER}: header length 65537 is out of range",
            b"",
        ),
        ("truncated inside the header", base[: h - 5], AUTH, f"{HEADER}: the input ends inside the header", b""),
        ("truncated inside the MAC", base[: h + 40], AUTH, f"{HEADER}: the input ends inside the header", b""),
        (
            "header length one too long",
            base[:9] + struct.pack(">I", len(header) + 1) + base[13:],
            AUTH,
            f"{HEADER}: the header is not JSON",
            b"",
        ),
        (
            "header not canonical: a space",
            _with_header(base, raw=header.replace(b'","', b'", "', 1)),
            AUTH,
            f"{HEADER}: the header is not canonical JSON",
            b"",
        ),
        (
            "header not canonical: members unsorted",
            _with_header(
                base, raw=json.dumps(dict(reversed(json.loads(header).items())), separators=(",", ":")).encode()
            ),
            AUTH,
            f"{HEADER}: the header is not canonical JSON",
            b"",
        ),
        (
            "header not canonical: ChunkSize 8.0",
            _with_header(base, raw=header.replace(b'"ChunkSize":8', b'"ChunkSize":8.0')),
            AUTH,
            f"{HEADER}: ChunkSize is not an integer from 1 to 1048576",
            b"",
        ),
        *(
            (
                f"header: {what}",
                _with_header(base, change),
                AUTH,
                f"{HEADER}: {message}",
                b"",
            )
            for what, change, message in [
                (
                    "unknown member",
                    lambda o: {**o, "Extra": 1},
                    "the header must have exactly the members "
                    "Algorithm, ChunkSize, EncryptedDataKey, EncryptionContext, KeyId, Salt",
                ),
                (
                    "missing member",
                    lambda o: {k: v for k, v in o.items() if k != "Salt"},
                    "the header must have exactly the members "
                    "Algorithm, ChunkSize, EncryptedDataKey, EncryptionContext, KeyId, Salt",
                ),
                (
                    "header is an array",
                    lambda o: [o],
                    "the header must have exactly the members "
                    "Algorithm, ChunkSize, EncryptedDataKey, EncryptionContext, KeyId, Salt",
                ),
                (
                    "another Algorithm",
                    lambda o: {**o, "Algorithm": "AES_256_GCM"},
                    f"Algorithm is not {sealed.ALGORITHM}",
                ),
                ("ChunkSize 0", lambda o: {**o, "ChunkSize": 0}, "ChunkSize is not an integer from 1 to 1048576"),
                (
                    "ChunkSize 1048577",
                    lambda o: {**o, "ChunkSize": 1048577},
                    "ChunkSize is not an integer from 1 to 1048576",
                ),
                ("ChunkSize true", lambda o: {**o, "ChunkSize": True}, "ChunkSize is not an integer from 1 to 1048576"),
                ("KeyId empty", lambda o: {**o, "KeyId": ""}, "KeyId is not a non-empty string"),
                (
                    "context value not a string",
                    lambda o: {**o, "EncryptionContext": {"app": 1}},
                    "EncryptionContext does not map strings to strings",
                ),
                ("Salt of 31 bytes", lambda o: {**o, "Salt": b64(SALT[:31]).decode()}, "Salt is not 32 bytes"),
                ("Salt not base64", lambda o: {**o, "Salt": "*" * 44}, "Salt is not base64"),
                (
                    "Salt not canonical base64",
                    lambda o: {**o, "Salt": o["Salt"][:-2] + "1="},
                    "Salt is not canonical base64",
                ),
                (
                    "EncryptedDataKey empty",
                    lambda o: {**o, "EncryptedDataKey": ""},
                    "EncryptedDataKey is not 1 to 6144 bytes",
                ),
            ]
        ),
        ("commitment: one bit flipped", _flip(base, h), AUTH, HEADER, b""),
        ("commitment: wrong but MAC recomputed", _remac(base, bytes(32)), AUTH, HEADER, b""),
        ("header MAC: one bit flipped", _flip(base, h + 63, 7), AUTH, HEADER, b""),
        (
            "header: KeyId changed (MAC fails)",
            _with_header(base, lambda o: {**o, "KeyId": o["KeyId"].replace("1234abcd", "1234abce")}),
            AUTH,
            HEADER,
            b"",
        ),
        (
            "header: ChunkSize changed (MAC fails)",
            _with_header(base, lambda o: {**o, "ChunkSize": 9}),
            AUTH,
            HEADER,
            b"",
        ),
        (
            "header: another salt (commitment fails)",
            _with_header(base, lambda o: {**o, "Salt": b64(bytes(32)).decode()}),
            AUTH,
            HEADER,
            b"",
        ),
        (
            "header: context changed (MAC fails)",
            _with_header(base, lambda o: {**o, "EncryptionContext": {"app": "doc"}}),
            AUTH,
            HEADER,
            b"",
        ),
        ("wrong data key", base, AUTH, HEADER, b""),
        ("no body", preamble, AUTH, "sealed file is truncated after the header", b""),
        ("truncated after chunk 0", preamble + c0, AUTH, "sealed file is truncated after chunk 0", b""),
        ("truncated after chunk 1", preamble + c0 + c1, AUTH, "sealed file is truncated after chunk 1", b"hello, s"),
        ("truncated inside chunk 1", preamble + c0 + c1[:-1], AUTH, "chunk 1 fails authentication", b"hello, s"),
        (
            "truncated inside the last chunk",
            base[:-1],
            AUTH,
            "chunk 2 fails authentication",
            b"hello, sealed wo",
        ),
        (
            "truncated to less than a tag",
            preamble + c0 + c1 + c2[:15],
            AUTH,
            "chunk 2 fails authentication",
            BASE_TEXT[:16],
        ),
        ("chunk 0 dropped", preamble + c1 + c2, AUTH, "chunk 0 fails authentication", b""),
        ("chunk 1 dropped", preamble + c0 + c2, AUTH, "chunk 1 fails authentication", b"hello, s"),
        ("chunks 0 and 1 swapped", preamble + c1 + c0 + c2, AUTH, "chunk 0 fails authentication", b""),
        ("chunk 0 duplicated", preamble + c0 + c0 + c1 + c2, AUTH, "chunk 1 fails authentication", b"hello, s"),
        ("last chunk duplicated", base + c2, AUTH, "trailing data after the last chunk", BASE_TEXT[:16]),
        ("chunk 0 bit flipped", _flip(base, len(preamble) + 3), AUTH, "chunk 0 fails authentication", b""),
        ("chunk 1 tag bit flipped", _flip(base, len(preamble) + 47), AUTH, "chunk 1 fails authentication", b"hello, s"),
        ("last chunk bit flipped", _flip(base, len(base) - 1), AUTH, "chunk 2 fails authentication", BASE_TEXT[:16]),
        ("one byte appended", base + b"\n", AUTH, "trailing data after the last chunk", BASE_TEXT[:16]),
        (
            "4096 bytes appended (the most named as trailing)",
            base + bytes(4096),
            AUTH,
            "trailing data after the last chunk",
            BASE_TEXT[:16],
        ),
        ("4097 bytes appended", base + bytes(4097), AUTH, "chunk 2 fails authentication", BASE_TEXT[:16]),
        ("full last chunk, a chunk appended", two + t0, AUTH, "trailing data after the last chunk", pattern(16)),
        ("full last chunk, one byte appended", two + b"\x00", AUTH, "trailing data after the last chunk", pattern(16)),
        ("full chunks, last one dropped", two_pre + t0, AUTH, "sealed file is truncated after chunk 0", b""),
        (
            "non-conforming: chunk 0 flagged last, more follow",
            _nonconforming([(b"hello, s", True), (b"ealed wo", False), (b"rld", True)]),
            AUTH,
            "trailing data after the last chunk",
            b"",
        ),
        (
            "non-conforming: short last chunk not flagged",
            _nonconforming([(b"hello, s", False), (b"ealed wo", False), (b"rld", False)]),
            AUTH,
            "chunk 2 fails authentication",
            b"hello, sealed wo",
        ),
        (
            "non-conforming: empty last chunk after a full one",
            _nonconforming([(b"hello, s", False), (b"", True)]),
            AUTH,
            "chunk 1 is an empty last chunk, which only chunk 0 may be",
            b"hello, s",
        ),
        (
            "non-conforming: short chunk before the last",
            _nonconforming([(b"hello", False), (b"world", True)]),
            AUTH,
            "chunk 0 fails authentication",
            b"",
        ),
    ]
    out = []
    for name, data, expected, message, released in cases:
        key = OTHER_KEY if name == "wrong data key" else DATA_KEY
        got, error = open_sealed(data, key)
        assert error is not None and (error.code, error.message, got) == (expected, message, released), (
            name,
            error and error.code,
            error and error.message,
            got,
        )
        out.append(
            {
                "name": name,
                "data_key": key.hex(),
                "sealed": data.hex(),
                "expected": expected,
                "message": message,
                "output_before_failure": released.hex(),
            }
        )
    return out


def build() -> dict[str, Any]:
    return {
        "format": "kmsctl sealed file, version 1 (docs/SEALED-FORMAT.md)",
        "generator": "tests/vectors/generate_sealed.py",
        "outcomes": [NOT_SEALED, AUTH],
        "valid": valid_cases(),
        "invalid": invalid_cases(),
    }


def main() -> None:
    print(json.dumps(build(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

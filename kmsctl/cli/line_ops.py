"""What one line is for each command in line mode (``--lines``, see
kmsctl.cli.lines): how a line becomes the operation's arguments, and how the
response becomes the result line. The key's default algorithm is looked up
once per run, not once per line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kmsctl.cli.lines import b64decode_strict
from kmsctl.errors import ValidationException

if TYPE_CHECKING:
    from kmsctl.cli.app import App

LineOp = Callable[[bytes, bool], bytes]  # (line, -o json) -> the result line, without its LF


def _b64encode(data: bytes) -> bytes:
    import base64

    return base64.b64encode(data)


def _value(line: bytes, b64: bool, what: str) -> bytes:
    return b64decode_strict(line, what) if b64 else line


def _result(out: dict[str, Any], field: str, json_lines: bool) -> bytes:
    if json_lines:
        import json

        shaped = {k: (_b64encode(v).decode() if isinstance(v, bytes) else v) for k, v in out.items()}
        return json.dumps(shaped, separators=(",", ":"), ensure_ascii=False).encode()
    value = out[field]
    return _b64encode(value) if isinstance(value, bytes) else (b"true" if value else b"false")


def _encrypt(app: App, p: dict[str, Any]) -> LineOp:
    from kmsctl.cli.crypto import _ctx, _rsa_default

    args: dict[str, Any] = {"KeyId": p["key"]}
    if p["context"]:
        args["EncryptionContext"] = _ctx(p["context"])
    algorithm = _rsa_default(app, p["key"], p["algorithm"])
    if algorithm:
        args["EncryptionAlgorithm"] = algorithm
    kms = app.kms()
    return lambda line, j: _result(
        kms.encrypt(Plaintext=_value(line, p["b64"], "the plaintext"), **args), "CiphertextBlob", j
    )


def _decrypt(app: App, p: dict[str, Any]) -> LineOp:
    from kmsctl.cli.crypto import _ctx, _rsa_default

    args: dict[str, Any] = {}
    if p["key"]:
        args["KeyId"] = p["key"]
    if p["context"]:
        args["EncryptionContext"] = _ctx(p["context"])
    algorithm = _rsa_default(app, p["key"], p["algorithm"])
    if algorithm:
        args["EncryptionAlgorithm"] = algorithm
    kms = app.kms()

    def one(line: bytes, json_lines: bool) -> bytes:
        out = kms.decrypt(CiphertextBlob=b64decode_strict(line, "the ciphertext"), **args)
        if json_lines or p["b64"]:
            return _result(out, "Plaintext", json_lines)
        plaintext: bytes = out["Plaintext"]
        if b"\n" in plaintext:
            raise ValidationException("the plaintext holds a line break", hint="use --base64 for plaintexts like it")
        return plaintext

    return one


def _re_encrypt(app: App, p: dict[str, Any]) -> LineOp:
    from kmsctl.cli.crypto import _ctx, _rsa_default

    args: dict[str, Any] = {"DestinationKeyId": p["key"]}
    if p["source_key"]:
        args["SourceKeyId"] = p["source_key"]
    if p["source_context"]:
        args["SourceEncryptionContext"] = _ctx(p["source_context"], "--source-context")
    if p["context"]:
        args["DestinationEncryptionContext"] = _ctx(p["context"])
    source_algorithm = _rsa_default(app, p["source_key"], p["source_algorithm"])
    if source_algorithm:
        args["SourceEncryptionAlgorithm"] = source_algorithm
    algorithm = _rsa_default(app, p["key"], p["algorithm"])
    if algorithm:
        args["DestinationEncryptionAlgorithm"] = algorithm
    kms = app.kms()
    return lambda line, j: _result(
        kms.re_encrypt(CiphertextBlob=b64decode_strict(line, "the ciphertext"), **args), "CiphertextBlob", j
    )


def _signing(app: App, p: dict[str, Any]) -> dict[str, Any]:
    from kmsctl.cli.sign import _default_algorithm

    algorithm = p["algorithm"] or _default_algorithm(
        app, p["key"], "SigningAlgorithms", "RSASSA_PSS_SHA_256", p["message_type"]
    )
    return {"KeyId": p["key"], "MessageType": p["message_type"], "SigningAlgorithm": algorithm}


def _sign(app: App, p: dict[str, Any]) -> LineOp:
    args, kms = _signing(app, p), app.kms()
    return lambda line, j: _result(kms.sign(Message=_value(line, p["b64"], "the message"), **args), "Signature", j)


def _verify(app: App, p: dict[str, Any]) -> LineOp:
    args, kms = _signing(app, p), app.kms()

    def one(line: bytes, json_lines: bool) -> bytes:
        message, tab, signature = line.rpartition(b"\t")  # base64 holds no TAB: the last one splits
        if not tab:
            raise ValidationException("expected MESSAGE<TAB>SIGNATURE")
        out = kms.verify(
            Message=_value(message, p.get("b64", False), "the message"),
            Signature=b64decode_strict(signature, "the signature"),
            **args,
        )
        return _result(out, "SignatureValid", json_lines)

    return one


def _hmac(app: App, p: dict[str, Any]) -> LineOp:
    from kmsctl.cli.sign import _default_algorithm

    kms = app.kms()
    algorithm = p["algorithm"] or _default_algorithm(app, p["key"], "MacAlgorithms", "HMAC_SHA_256")
    return lambda line, j: _result(
        kms.generate_mac(KeyId=p["key"], Message=_value(line, p["b64"], "the message"), MacAlgorithm=algorithm),
        "Mac",
        j,
    )


def _random(app: App, p: dict[str, Any]) -> LineOp:
    kms = app.kms()

    def one(line: bytes, json_lines: bool) -> bytes:
        text = line.strip()
        if not text.isdigit() or len(text) > 6:
            raise ValidationException(f"expected a byte count (1-1024), got {line[:20].decode(errors='replace')!r}")
        return _result(kms.generate_random(NumberOfBytes=int(text)), "Plaintext", json_lines)

    return one


MAKERS: dict[str, Callable[[App, dict[str, Any]], LineOp]] = {
    "encrypt": _encrypt,
    "decrypt": _decrypt,
    "re-encrypt": _re_encrypt,
    "sign": _sign,
    "verify": _verify,
    "hmac": _hmac,
    "random": _random,
}

"""AWS JSON 1.1, as KMS speaks it: request members in, response members out.

The members and their types come from botocore's model of KMS (loaded once per
process), so the server accepts exactly what AWS accepts and nothing is typed
by hand: blobs are standard padded base64 both ways, timestamps epoch seconds,
integers and booleans native JSON. A request whose JSON does not match the
model's types is a SerializationException, a missing required member a
ValidationException in AWS's wording; everything else (lengths, enums, key
states) is the operation's own check, as on the command line.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from datetime import UTC, datetime
from typing import Any

from kmsctl import errors as E

TARGET_PREFIX = "TrentService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_DEPTH = 32  # nesting of a request document; KMS's deepest member is 3 levels down


@functools.cache
def model() -> dict[str, Any]:
    """botocore's KMS service model (``service-2.json``), without its documentation text."""
    from botocore.loaders import create_loader

    raw = create_loader().load_service_model("kms", "service-2")
    shapes = {name: {k: v for k, v in shape.items() if k != "documentation"} for name, shape in raw["shapes"].items()}
    for shape in shapes.values():
        if "members" in shape:
            shape["members"] = {m: {"shape": ref["shape"]} for m, ref in shape["members"].items()}
    operations = {
        name: {"input": op.get("input", {}).get("shape"), "output": op.get("output", {}).get("shape")}
        for name, op in raw["operations"].items()
    }
    return {"shapes": shapes, "operations": operations, "metadata": raw["metadata"]}


def operations() -> dict[str, str]:
    """AWS operation name -> LocalKMS method name, for every operation both have."""
    from kmsctl.service import LocalKMS

    known = model()["operations"]
    out: dict[str, str] = {}
    for attr in dir(LocalKMS):
        name = getattr(getattr(LocalKMS, attr), "operation_name", None)
        if isinstance(name, str) and name in known:
            out[name] = attr
    return out


def operation_of(target: str | None) -> str | None:
    """``TrentService.Encrypt`` -> ``Encrypt`` when the model has it, else None."""
    if not target or not target.startswith(TARGET_PREFIX):
        return None
    name = target[len(TARGET_PREFIX) :]
    return name if name in model()["operations"] else None


def parse_body(body: bytes) -> dict[str, Any]:
    """The request document: a JSON object (an empty body is ``{}``)."""
    if not body.strip():
        return {}
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise E.SerializationException("The request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise E.SerializationException("The request body must be a JSON object")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def request_members(operation: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The operation's keyword arguments from the request document, typed by the model."""
    shape_name = model()["operations"][operation]["input"]
    if shape_name is None:
        return {}
    shape = model()["shapes"][shape_name]
    missing = [m for m in shape.get("required", []) if doc.get(m) is None]
    if missing:
        n = len(missing)
        details = "; ".join(
            f"Value null at '{_camel(m)}' failed to satisfy constraint: Member must not be null" for m in missing
        )
        raise E.ValidationException(f"{n} validation error{'s' if n > 1 else ''} detected: {details}")
    out = _value(shape_name, doc, "", 0)
    assert isinstance(out, dict)
    return out


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _wrong(path: str, expected: str, value: Any) -> E.KMSError:
    got = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
    return E.SerializationException(f"'{path or 'body'}' must be {expected}, not {got}")


def _value(shape_name: str, value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise E.SerializationException("The request document is nested too deeply")
    shape = model()["shapes"][shape_name]
    kind = shape["type"]
    if kind == "structure":
        if not isinstance(value, dict):
            raise _wrong(path, "an object", value)
        members = shape.get("members", {})
        out: dict[str, Any] = {}
        for name, item in value.items():  # members the model does not have are ignored, as AWS does
            if name in members and item is not None:
                out[name] = _value(members[name]["shape"], item, f"{path}.{name}" if path else name, depth + 1)
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise _wrong(path, "an array", value)
        member = shape["member"]["shape"]
        return [_value(member, item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise _wrong(path, "an object", value)
        vshape = shape["value"]["shape"]
        return {k: _value(vshape, v, f"{path}.{k}", depth + 1) for k, v in value.items()}
    if kind == "string":
        if not isinstance(value, str):
            raise _wrong(path, "a string", value)
        return value
    if kind == "blob":
        if not isinstance(value, str):
            raise _wrong(path, "a base64 string", value)
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raise E.SerializationException(f"'{path}' is not valid base64") from None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _wrong(path, "a boolean", value)
        return value
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong(path, "an integer", value)
        return value
    if kind in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _wrong(path, "a number", value)
        return float(value)
    if kind == "timestamp":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _wrong(path, "a timestamp in epoch seconds", value)
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise E.SerializationException(f"'{path}' is not a valid timestamp") from None
    raise E.SerializationException(f"'{path}' has a type this server does not take ({kind})")


def response_body(response: dict[str, Any] | None) -> bytes:
    """The response document: blobs base64, timestamps epoch seconds, no nulls."""
    return json.dumps(_out(response or {}), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _out(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    if isinstance(value, dict):
        return {str(k): _out(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_out(v) for v in value]
    return value


# kmsctl's own errors that have no AWS name: what a client is told instead
_WIRE_NAMES = {"IntegrityError": "KMSInternalException", "UsageError": "ValidationException"}


def error_body(error: E.KMSError) -> tuple[int, str, bytes]:
    """(HTTP status, AWS error name, body) for an error."""
    code = _WIRE_NAMES.get(error.code, error.code)
    status = E.by_name(code).http_status if code != error.code else error.http_status
    message = error.message if code == error.code or code == "ValidationException" else "An internal error occurred"
    body = json.dumps({"__type": code, "message": message}, ensure_ascii=False).encode("utf-8")
    return status, code, body

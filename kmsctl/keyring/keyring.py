"""An opened keyring: the header, unlocking, sessions and sealed records.

The master key (MK) is 32 random bytes made at ``init``. It is stored only
wrapped: by AES-256-GCM under Argon2id(passphrase) in the header, and once per
live session under that session's random secret, which only the session token
holds. From MK come, by HKDF-Expand, the record MAC key and the material
wrapping key. docs/FORMAT.md section 2 has the details.
"""

from __future__ import annotations

import base64
import json
import os
from contextlib import suppress
from typing import Any

from kmsctl.crypto import primitives as P
from kmsctl.errors import AccessDeniedException, IntegrityError, NotFoundException
from kmsctl.keyring.store import DB_NAME, Database, as_blob, create_database, dumps

FORMAT = "kmsctl-keyring"
FORMAT_VERSION = 1
SESSION_PREFIX = "kmsctl_s1_"
# RFC 9106 section 4, second recommended option: t=3, p=4, m=64 MiB
DEFAULT_KDF = {"iterations": 3, "memory_kib": 65536, "lanes": 4}
# The least Argon2id cost a header may hold (and init or passwd write): below
# it, a header is damage (exit 8), not a wrong passphrase. The ceilings refuse
# a denial of service (16 GiB, 64 passes). kmsctl.config.KDF_BOUNDS says the same.
KDF_FLOOR = {"iterations": 1, "memory_kib": 1024, "lanes": 1}
KDF_CEILING = {"iterations": 64, "memory_kib": 16 << 20, "lanes": 64}
_UNPROTECTED_KEK = bytes(32)

_AAD_MK = b"kmsctl master key v1\x00"
_AAD_SESSION = b"kmsctl session v1\x00"
_MAC_HEADER = b"kmsctl header v1\x00"
_MAC_KEY = b"kmsctl key v1\x00"
_MAC_ALIAS = b"kmsctl alias v1\x00"
_AAD_MATERIAL = b"kmsctl material v1\x00"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def db_path(home: str) -> str:
    return os.path.join(home, DB_NAME)


def kdf_problem(kdf: dict[str, Any]) -> str | None:
    """What is wrong with Argon2id parameters (None if they are within the
    floor and the ceilings, and memory is at least 8 KiB a lane)."""
    for name in ("iterations", "memory_kib", "lanes"):
        value = kdf.get(name)
        if type(value) is not int:
            return f"{name} is not a whole number"
        if not KDF_FLOOR[name] <= value <= KDF_CEILING[name]:
            return f"{name} {value} is outside {KDF_FLOOR[name]}..{KDF_CEILING[name]}"
    if kdf["memory_kib"] < 8 * kdf["lanes"]:
        return "memory_kib is less than 8 x lanes"
    return None


def kept_kdf(stored: dict[str, Any] | None, configured: dict[str, int] | None = None) -> dict[str, int]:
    """The cost ``passwd`` wraps with: the stored one (the built-in default for
    a keyring that had none), each parameter raised to config.toml's kdf.*
    value where that is higher. A passphrase change never lowers the cost."""
    names = ("iterations", "memory_kib", "lanes")
    base = {k: int(stored[k]) for k in names} if stored else dict(DEFAULT_KDF)
    for name, value in (configured or {}).items():
        base[name] = max(base[name], value)
    return base


def _kek(header: dict[str, Any], passphrase: bytes | None) -> bytes:
    if not header["protected"]:
        return _UNPROTECTED_KEK
    assert passphrase is not None
    kdf = header["kdf"]
    return P.argon2id(
        passphrase,
        _unb64(kdf["salt"]),
        iterations=kdf["iterations"],
        memory_kib=kdf["memory_kib"],
        lanes=kdf["lanes"],
    )


def _mk_aad(header: dict[str, Any]) -> bytes:
    kdf = dumps(header.get("kdf") or {})
    return _AAD_MK + str(header["keyring_id"]).encode() + (b"\x01" if header["protected"] else b"\x00") + kdf


def create(
    home: str,
    passphrase: bytes | None,
    *,
    region: str,
    account: str,
    created: str,
    kdf: dict[str, int] | None = None,
) -> None:
    from kmsctl.keyring import epoch
    from kmsctl.keyring.audit import genesis_head
    from kmsctl.keyring.home import make_home

    if passphrase is not None:
        _check_passphrase_kdf(kdf or DEFAULT_KDF)
    make_home(home)
    mk = P.random_bytes(32)
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "keyring_id": P.random_bytes(16).hex(),
        "region": region,
        "account": account,
        "created": created,
        "protected": passphrase is not None,
    }
    if passphrase is not None:
        header["kdf"] = {"name": "argon2id", **(kdf or DEFAULT_KDF), "salt": _b64(P.random_bytes(16))}
    _wrap_mk(header, mk, passphrase)
    hbytes = dumps(header)
    # the audit trail's head from the start (seq 0): a trail emptied later,
    # head and all, is then always missing its head
    head = genesis_head(_derive(mk, b"audit"))
    create_database(db_path(home), hbytes, P.hmac_sha256(_mac_key(mk), _MAC_HEADER + hbytes), {"audit_head": head})
    with suppress(OSError):  # if it cannot be written now, the first open makes it
        epoch.write(home, epoch.document(header["keyring_id"], 0, head))


def _check_passphrase_kdf(kdf: dict[str, int]) -> None:
    problem = kdf_problem(dict(kdf))
    if problem:
        from kmsctl.errors import ValidationException

        raise ValidationException(f"Argon2id parameters: {problem}")


def _derive(mk: bytes, label: bytes) -> bytes:
    return P.hkdf_expand(mk, b"kmsctl v1 " + label)


def _wrap_mk(header: dict[str, Any], mk: bytes, passphrase: bytes | None) -> None:
    nonce, wrapped = P.gcm_seal(_kek(header, passphrase), mk, _mk_aad(header))
    header["master_key"] = {"nonce": _b64(nonce), "wrapped": _b64(wrapped)}


def _mac_key(mk: bytes) -> bytes:
    return P.hkdf_expand(mk, b"kmsctl v1 record mac")


class Keyring:
    """One keyring home. Reading the header needs no secret; records do."""

    def __init__(self, home: str, *, read_only: bool = False) -> None:
        from kmsctl.keyring import epoch
        from kmsctl.keyring.home import check_home, not_writable, writable

        self.home = home
        self.path = db_path(home)
        self.read_only = read_only
        if not os.path.exists(self.path):
            raise NotFoundException(
                f"no keyring at {self.home}", hint="create one with 'kmsctl init' (or set --home / KMSCTL_HOME)"
            )
        check_home(home, self.path)
        why = None if read_only else writable(home, self.path)
        if why:
            raise not_writable(home, why)
        # no umask games: SQLite gives the -wal and -shm files the database file's own mode (0600)
        self.db = Database(self.path, read_only=read_only)
        self.db.migrate()
        self.header: dict[str, Any] = _checked_header(self.db.meta("header"), self.path)
        self.keyring_id: str = self.header["keyring_id"]
        self.region: str = self.header["region"]
        self.account: str = self.header["account"]
        self.protected: bool = self.header["protected"]
        self._mk: bytes | None = None
        # the file first, then the database: the file only ever holds committed values
        self._epoch_state = epoch.read(home)
        epoch.check(self._epoch_state, self.keyring_id, self.db.epoch(), home)
        if not read_only:
            self.db.after_commit = self.publish_epoch
            if self._epoch_state is None:
                # missing (a keyring.db copied or restored alone, a keyring made
                # before the file existed) or torn by a power cut: made anew
                # from the database, which is then trusted as it is
                self.publish_epoch()

    def publish_epoch(self) -> None:
        """Write keyring.epoch from the committed state (after each write transaction)."""
        from kmsctl.keyring import epoch

        rows = self.db.query("SELECT name, value FROM meta WHERE name IN ('epoch', 'audit_head')")
        values = {name: (v.encode() if isinstance(v, str) else bytes(v)) for name, v in rows}
        raw = values.get("epoch", b"")
        if not raw.isdigit():
            return
        with suppress(OSError, ValueError):  # the file may lag the database; it never leads it
            epoch.write(self.home, epoch.document(self.keyring_id, int(raw), values.get("audit_head")))

    # ----- unlocking -----
    @property
    def unlocked(self) -> bool:
        return self._mk is not None

    def unlock_unprotected(self) -> None:
        self._set_mk(self._open_mk(None))

    def unlock_with_passphrase(self, passphrase: bytes) -> None:
        self._set_mk(self._open_mk(passphrase))

    def _open_mk(self, passphrase: bytes | None) -> bytes:
        try:
            wrap = self.header["master_key"]
            nonce, wrapped = _unb64(wrap["nonce"]), _unb64(wrap["wrapped"])
            kek = _kek(self.header, passphrase)
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{self.path}: the keyring header is damaged") from exc
        try:
            return P.gcm_open(kek, nonce, wrapped, _mk_aad(self.header))
        except P.AuthenticationFailed:
            if not self.protected:
                raise IntegrityError(f"{self.path}: the keyring header is damaged") from None
            raise AccessDeniedException(
                "wrong passphrase", hint="check --passphrase-file, KMSCTL_PASSPHRASE_FILE or KMSCTL_PASSPHRASE"
            ) from None

    def unlock_with_session(self, token: str, now: float) -> None:
        sid, secret = parse_token(token)
        rows = self.db.query("SELECT expires, nonce, wrapped FROM sessions WHERE sid = ?", (sid,))
        relock = "run 'eval \"$(kmsctl unlock --shell)\"' again"
        if not rows:
            raise AccessDeniedException("the session has ended (locked, or from another keyring)", hint=relock)
        expires, nonce, wrapped = rows[0]
        if not isinstance(expires, (int, float)):
            raise AccessDeniedException("the session record is damaged", hint=relock)
        if expires <= now:
            raise AccessDeniedException("the session has expired", hint=relock)
        try:
            mk = P.gcm_open(
                secret, as_blob(nonce, "session"), as_blob(wrapped, "session"), self._session_aad(sid, int(expires))
            )
        except P.AuthenticationFailed:
            raise AccessDeniedException("the session token is not valid for this keyring", hint=relock) from None
        self._set_mk(mk)

    def _session_aad(self, sid: bytes, expires: int) -> bytes:
        return _AAD_SESSION + self.keyring_id.encode() + sid + str(expires).encode()

    def _set_mk(self, mk: bytes) -> None:
        mac_key = _mac_key(mk)
        try:
            P.hmac_sha256_verify(
                mac_key, _MAC_HEADER + (self.db.meta("header") or b""), self.db.meta("header_mac") or b""
            )
        except P.AuthenticationFailed:
            raise IntegrityError(f"{self.path}: the keyring header fails its integrity check") from None
        self._check_epoch_head(mk)
        self._mk = mk
        self._derived: dict[bytes, bytes] = {}  # derive()'s keys, made once per master key
        self._mac = mac_key
        self._wrap = P.hkdf_expand(mk, b"kmsctl v1 material wrap")

    def _check_epoch_head(self, mk: bytes) -> None:
        """keyring.epoch's audit head (MACed) must not be ahead of the database's."""
        from kmsctl.keyring import epoch
        from kmsctl.keyring.audit import read_pointer

        state = self._epoch_state
        if state is None or state.get("head") is None:
            return
        key = _derive(mk, b"audit")
        try:
            file_seq, file_mac = read_pointer(dumps(state["head"]), key, "head")
        except IntegrityError:
            raise IntegrityError(f"{epoch.path(self.home)} fails its integrity check") from None
        raw = self.db.meta("audit_head")
        db_head = read_pointer(raw, key, "head") if raw is not None else None
        if db_head is None or db_head[0] < file_seq or (db_head[0] == file_seq and db_head[1] != file_mac):
            where = "has no audit head" if db_head is None else f"has audit record {db_head[0]} as its last"
            raise IntegrityError(
                f"{self.path} was rolled back: it {where} but {epoch.NAME} says record {file_seq} was written "
                "(committed changes lost, or an older copy of the file, or its audit trail emptied)",
                hint=epoch.RESTORED_HINT.format(path=epoch.path(self.home)),
            )

    def reopened(self) -> Keyring:
        """This keyring opened again on a database connection of its own, unlocked as this
        one is (``kmsctl serve``'s worker processes: an SQLite connection must not cross a fork)."""
        other = Keyring(self.home, read_only=self.read_only)
        if self._mk is not None:
            other._set_mk(self._mk)
        return other

    def derive(self, label: bytes) -> bytes:
        """A key for another purpose (the audit trail), independent of the others;
        derived once per unlock (a server asks for the access key wrap every request)."""
        mk = self._master()
        key = self._derived.get(label)
        if key is None:
            key = self._derived[label] = _derive(mk, label)
        return key

    def _master(self) -> bytes:
        if self._mk is None:
            raise AccessDeniedException("the keyring is locked")
        return self._mk

    # ----- sessions and passphrase -----
    def new_session(self, now: float, ttl_s: int) -> tuple[str, int]:
        mk = self._master()
        sid, secret = P.random_bytes(16), P.random_bytes(32)
        expires = int(now) + ttl_s
        nonce, wrapped = P.gcm_seal(secret, mk, self._session_aad(sid, expires))
        with self.db.write():
            self.db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            self.db.execute(
                "INSERT INTO sessions(sid, expires, nonce, wrapped) VALUES (?, ?, ?, ?)",
                (sid, expires, nonce, wrapped),
            )
        token = SESSION_PREFIX + base64.urlsafe_b64encode(sid + secret).decode().rstrip("=")
        return token, expires

    def end_sessions(self) -> int:
        with self.db.write():
            return self.db.execute("DELETE FROM sessions")

    def session_expires(self, token: str) -> int | None:
        rows = self.db.query("SELECT expires FROM sessions WHERE sid = ?", (parse_token(token)[0],))
        return int(rows[0][0]) if rows else None

    def count_sessions(self, now: float) -> int:
        return int(self.db.query("SELECT count(*) FROM sessions WHERE expires > ?", (now,))[0][0])

    def change_passphrase(self, new: bytes | None, configured_kdf: dict[str, int] | None = None) -> None:
        """Re-wrap MK under a new passphrase; every session ends, since a passphrase
        change usually answers a suspected leak. The Argon2id cost is the stored
        one, raised to ``configured_kdf`` (config.toml's kdf.*) where that is higher."""
        mk = self._master()
        header = dict(self.header)
        kdf = kept_kdf(header.get("kdf") if header["protected"] else None, configured_kdf)
        header["protected"] = new is not None
        header.pop("kdf", None)
        if new is not None:
            _check_passphrase_kdf(kdf)
            header["kdf"] = {"name": "argon2id", **kdf, "salt": _b64(P.random_bytes(16))}
        _wrap_mk(header, mk, new)
        hbytes = dumps(header)
        with self.db.write():
            self.db.set_meta("header", hbytes)
            self.db.set_meta("header_mac", P.hmac_sha256(self._mac, _MAC_HEADER + hbytes))
            self.db.execute("DELETE FROM sessions")
        self.header, self.protected = header, new is not None

    # ----- sealed records -----
    def mac_doc(self, kind: bytes, doc: bytes) -> bytes:
        self._master()
        return P.hmac_sha256(self._mac, kind + doc)

    def check_doc(self, kind: bytes, doc: bytes, mac: bytes, what: str) -> dict[str, Any]:
        self._master()
        try:
            P.hmac_sha256_verify(self._mac, kind + doc, mac)
            out: dict[str, Any] = json.loads(doc)
            return out
        except (P.AuthenticationFailed, ValueError):
            raise IntegrityError(f"{self.path}: {what} fails its integrity check") from None

    def seal_material(self, key_id: str, material_id: str, doc: bytes, secret: bytes) -> tuple[bytes, bytes]:
        self._master()
        return P.gcm_seal(self._wrap, secret, self._material_aad(key_id, material_id, doc))

    def open_material(self, key_id: str, material_id: str, doc: bytes, nonce: bytes, sealed: bytes) -> bytes:
        self._master()
        try:
            return P.gcm_open(self._wrap, nonce, sealed, self._material_aad(key_id, material_id, doc))
        except P.AuthenticationFailed:
            raise IntegrityError(
                f"{self.path}: key material {material_id[:12]}… of key {key_id} fails its integrity check"
            ) from None

    @staticmethod
    def _material_aad(key_id: str, material_id: str, doc: bytes) -> bytes:
        return _AAD_MATERIAL + key_id.encode() + b"\x00" + material_id.encode() + b"\x00" + doc

    def close(self) -> None:
        self.db.close()


def _checked_header(raw: bytes | None, path: str) -> dict[str, Any]:
    """The header, with every field the code relies on present and sane; the
    MAC is checked once the master key is known. Anything else is damage."""
    damaged = IntegrityError(f"{path}: the keyring header is damaged")
    try:
        header = json.loads(raw or b"")
    except ValueError:
        raise damaged from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise damaged
    if header.get("version") != FORMAT_VERSION:
        raise IntegrityError(
            f"{path}: keyring format version {header.get('version')!r} is not one this kmsctl reads ({FORMAT_VERSION})",
            hint="upgrade kmsctl",
        )
    strings = ("keyring_id", "region", "account")
    wrap = header.get("master_key")
    ok = all(isinstance(header.get(k), str) for k in strings) and isinstance(header.get("protected"), bool)
    ok = ok and isinstance(wrap, dict) and all(isinstance(wrap.get(k), str) for k in ("nonce", "wrapped"))
    if ok and header["protected"]:
        kdf = header.get("kdf")
        ok = isinstance(kdf, dict) and kdf.get("name") == "argon2id" and isinstance(kdf.get("salt"), str)
        ints = [kdf.get(k) for k in ("iterations", "memory_kib", "lanes")] if ok and isinstance(kdf, dict) else []
        ok = ok and all(type(v) is int for v in ints)
        if ok and isinstance(kdf, dict):
            # below the floor (edited: init and passwd never write it) or above
            # the ceilings (a denial of service): damage, not a wrong passphrase
            problem = kdf_problem(kdf)
            if problem:
                raise IntegrityError(f"{path}: the keyring header is damaged (Argon2id parameters: {problem})")
    if not ok:
        raise damaged
    return header


KEY_KIND = _MAC_KEY
ALIAS_KIND = _MAC_ALIAS


def parse_token(token: str) -> tuple[bytes, bytes]:
    token = token.strip()
    bad = AccessDeniedException(
        "KMSCTL_SESSION does not hold a kmsctl session token", hint="set it from 'kmsctl unlock --shell'"
    )
    if not token.startswith(SESSION_PREFIX):
        raise bad
    body = token[len(SESSION_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        raise bad from None
    if len(raw) != 48:
        raise bad
    return raw[:16], raw[16:]

"""An opened keyring: the header, unlocking, sessions and sealed records.

The master key (MK) is 32 random bytes made at ``init``. It is stored only
wrapped: by AES-256-GCM under Argon2id(passphrase) in the header, and once per
live session under that session's random secret, which only the session token
holds. With a PKCS#11 token as root of trust (header version 2), the header's
key is HKDF over both Argon2id(passphrase) and a share that only the token
unwraps. From MK come, by HKDF-Expand, the record MAC key and the material
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
from kmsctl.keyring.header import (
    FORMAT,
    FORMAT_VERSION,
    FORMAT_VERSION_TOKEN,
    READ_VERSIONS,
    TOKEN_MECHANISM,
    Enrol,
    _b64,
    _checked_header,
    _final_kek,
    _kpass,
    _mk_aad,
    _unb64,
    _wrap_mk,
    kdf_problem,
    token_kek,
)
from kmsctl.keyring.store import DB_NAME, Database, as_blob, create_database, dumps

__all__ = ["FORMAT", "FORMAT_VERSION", "FORMAT_VERSION_TOKEN", "READ_VERSIONS", "TOKEN_MECHANISM", "Enrol", "token_kek"]

SESSION_PREFIX = "kmsctl_s1_"
# RFC 9106 section 4, second recommended option: t=3, p=4, m=64 MiB
DEFAULT_KDF = {"iterations": 3, "memory_kib": 65536, "lanes": 4}
_AAD_SESSION = b"kmsctl session v1\x00"
_MAC_HEADER = b"kmsctl header v1\x00"
_MAC_KEY = b"kmsctl key v1\x00"
_MAC_ALIAS = b"kmsctl alias v1\x00"
_AAD_MATERIAL = b"kmsctl material v1\x00"


def kept_kdf(stored: dict[str, Any] | None, configured: dict[str, int] | None = None) -> dict[str, int]:
    """The cost ``passwd`` wraps with: the stored one (the built-in default for
    a keyring that had none), each parameter raised to config.toml's kdf.*
    value where that is higher. A passphrase change never lowers the cost."""
    names = ("iterations", "memory_kib", "lanes")
    base = {k: int(stored[k]) for k in names} if stored else dict(DEFAULT_KDF)
    for name, value in (configured or {}).items():
        base[name] = max(base[name], value)
    return base


def db_path(home: str) -> str:
    return os.path.join(home, DB_NAME)


def create(
    home: str,
    passphrase: bytes | None,
    *,
    region: str,
    account: str,
    created: str,
    kdf: dict[str, int] | None = None,
    enrol: Enrol | None = None,
) -> None:
    """A new keyring at ``home``; ``enrol`` (kmsctl.keyring.root) makes the
    token's key and share first when a token is to be the second factor."""
    from kmsctl.keyring import epoch
    from kmsctl.keyring.audit import genesis_head
    from kmsctl.keyring.home import make_home

    if passphrase is not None:
        _check_passphrase_kdf(kdf or DEFAULT_KDF)
    keyring_id = P.random_bytes(16).hex()
    stanza, share = enrol(keyring_id) if enrol is not None else (None, None)
    make_home(home)
    mk = P.random_bytes(32)
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION if stanza is None else FORMAT_VERSION_TOKEN,
        "keyring_id": keyring_id,
        "region": region,
        "account": account,
        "created": created,
        "protected": passphrase is not None,
    }
    if passphrase is not None:
        header["kdf"] = {"name": "argon2id", **(kdf or DEFAULT_KDF), "salt": _b64(P.random_bytes(16))}
    if stanza is not None:
        header["pkcs11"] = stanza
    _wrap_mk(header, mk, _kpass(header, passphrase), share)
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
        # K_pass and the token's share, kept after an unlock by the factors
        # themselves (not a session): passwd re-wraps with them
        self._factors: tuple[bytes, bytes | None] | None = None
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

    @property
    def token_stanza(self) -> dict[str, Any] | None:
        """The header's "pkcs11" stanza: the token that is a second factor, or None."""
        stanza = self.header.get("pkcs11")
        return stanza if isinstance(stanza, dict) else None

    @property
    def needs_credential(self) -> bool:
        """A passphrase or a token (or both) guards the master key."""
        return self.protected or self.token_stanza is not None

    def unlock_unprotected(self, share: bytes | None = None) -> None:
        """No passphrase; ``share`` is the token's when the header has one."""
        self._open_mk(None, share)

    def unlock_with_passphrase(self, passphrase: bytes, share: bytes | None = None) -> None:
        self._open_mk(passphrase, share)

    def _open_mk(self, passphrase: bytes | None, share: bytes | None) -> None:
        try:
            wrap = self.header["master_key"]
            nonce, wrapped = _unb64(wrap["nonce"]), _unb64(wrap["wrapped"])
            k_pass = _kpass(self.header, passphrase)
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{self.path}: the keyring header is damaged") from exc
        kek = _final_kek(self.header, k_pass, share)
        try:
            mk = P.gcm_open(kek, nonce, wrapped, _mk_aad(self.header))
        except P.AuthenticationFailed:
            if not self.protected:
                raise IntegrityError(f"{self.path}: the keyring header is damaged") from None
            raise AccessDeniedException(
                "wrong passphrase", hint="check --passphrase-file, KMSCTL_PASSPHRASE_FILE or KMSCTL_PASSPHRASE"
            ) from None
        self._set_mk(mk)
        self._factors = (k_pass, share)

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
        share = self._unlocked_factors()[1] if self.token_stanza is not None else None
        k_pass = _kpass(header, new)
        self._write_header(header, mk, k_pass, share)

    def _unlocked_factors(self) -> tuple[bytes, bytes | None]:
        if self._factors is None:
            raise AccessDeniedException(
                "this change needs the keyring unlocked by its passphrase and token, not by a session"
            )
        return self._factors

    def set_token(self, stanza: dict[str, Any] | None, share: bytes | None) -> None:
        """Add (``stanza`` and its share) or remove (None) the token as second
        factor: the header is re-wrapped atomically, the passphrase kept, every
        session ended. The records are untouched (MK is unchanged)."""
        mk = self._master()
        k_pass, _ = self._unlocked_factors()
        header = dict(self.header)
        header.pop("pkcs11", None)
        if stanza is not None:
            header["pkcs11"] = stanza
        header["version"] = FORMAT_VERSION if stanza is None else FORMAT_VERSION_TOKEN
        self._write_header(header, mk, k_pass, share)

    def _write_header(self, header: dict[str, Any], mk: bytes, k_pass: bytes, share: bytes | None) -> None:
        _wrap_mk(header, mk, k_pass, share)
        hbytes = dumps(header)
        with self.db.write():
            self.db.set_meta("header", hbytes)
            self.db.set_meta("header_mac", P.hmac_sha256(self._mac, _MAC_HEADER + hbytes))
            self.db.execute("DELETE FROM sessions")
        self.header, self.protected = header, bool(header["protected"])
        self._factors = (k_pass, share if header.get("pkcs11") is not None else None)

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

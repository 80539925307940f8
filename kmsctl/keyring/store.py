"""The keyring database: one SQLite file, WAL mode, integrity-protected rows.

Layout and invariants are written up in docs/FORMAT.md section 2. In short:
every JSON document stored here (key metadata, aliases, the header) carries an
HMAC-SHA256 under a key derived from the keyring master key, and every piece of
key material is sealed with AES-256-GCM, its metadata bound as associated data.
A row that fails its check raises ``IntegrityError`` (exit 8); nothing unverified
is ever returned.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from kmsctl.canonical import canonical_json
from kmsctl.errors import AccessDeniedException, IntegrityError, NotFoundException
from kmsctl.keyring.conn_state import ConnectionState, busy

DB_NAME = "keyring.db"
SCHEMA_VERSION = 6
BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE keys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT NOT NULL UNIQUE,
    key_state TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    deletion_date REAL,
    doc BLOB NOT NULL,
    mac BLOB NOT NULL
);
CREATE INDEX keys_deletion ON keys(deletion_date) WHERE deletion_date IS NOT NULL;
CREATE TABLE materials (
    key_id TEXT NOT NULL,
    material_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    doc BLOB NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (key_id, material_id)
);
CREATE TABLE aliases (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    doc BLOB NOT NULL,
    mac BLOB NOT NULL
);
CREATE INDEX aliases_key ON aliases(key_id);
CREATE TABLE sessions (
    sid BLOB PRIMARY KEY,
    expires REAL NOT NULL,
    nonce BLOB NOT NULL,
    wrapped BLOB NOT NULL
);
"""

# schema version -> SQL that upgrades from the version before it. A new
# keyring is made at version 1 and migrated up, so every migration runs on
# every new keyring and is exercised by every test.
MIGRATIONS: dict[int, str] = {
    # 2: automatic rotation; next_rotation mirrors the key document's
    # Rotation.NextRotation so that due keys are found through an index
    2: """
    ALTER TABLE keys ADD COLUMN next_rotation REAL;
    CREATE INDEX keys_rotation ON keys(next_rotation) WHERE next_rotation IS NOT NULL;
    CREATE INDEX materials_seq ON materials(key_id, seq);
    """,
    # 3: the audit trail (kmsctl/keyring/audit.py, docs/AUDIT.md)
    3: """
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        event_time REAL NOT NULL,
        event_name TEXT NOT NULL,
        key_id TEXT,
        error_code TEXT,
        record BLOB NOT NULL,
        prev BLOB NOT NULL,
        mac BLOB NOT NULL
    );
    CREATE INDEX audit_key ON audit(key_id, seq) WHERE key_id IS NOT NULL;
    CREATE INDEX audit_event ON audit(event_name, seq);
    CREATE INDEX audit_time ON audit(event_time);
    CREATE TABLE audit_pending (id INTEGER PRIMARY KEY, event_time REAL NOT NULL, record BLOB NOT NULL);
    """,
    # 4: the commit counter (kmsctl/keyring/epoch.py); a keyring made before
    # init wrote the audit trail's head, and without one yet, is marked so
    # that its trail may start without a head (its first record writes one)
    4: """
    INSERT OR IGNORE INTO meta(name, value) VALUES ('epoch', '0');
    INSERT INTO meta(name, value) SELECT 'audit_legacy', '1'
        WHERE NOT EXISTS (SELECT 1 FROM meta WHERE name = 'audit_head');
    """,
    # 5: access control (kmsctl/service/access.py, docs/POLICY.md): IAM
    # principals with their identity policy, their access keys (the secret
    # sealed), and grants; every doc MACed like a key's. Key policies live in
    # the key document (absent: the default key policy).
    5: """
    CREATE TABLE principals (arn TEXT PRIMARY KEY, doc BLOB NOT NULL, mac BLOB NOT NULL);
    CREATE TABLE access_keys (
        access_key_id TEXT PRIMARY KEY,
        arn TEXT NOT NULL,
        doc BLOB NOT NULL,
        nonce BLOB NOT NULL,
        sealed BLOB NOT NULL
    );
    CREATE INDEX access_keys_arn ON access_keys(arn);
    CREATE TABLE grants (
        grant_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        retiring TEXT,
        doc BLOB NOT NULL,
        mac BLOB NOT NULL
    );
    CREATE INDEX grants_key ON grants(key_id);
    CREATE INDEX grants_retiring ON grants(retiring) WHERE retiring IS NOT NULL;
    """,
    # 6: custom key stores (kmsctl/service/keystores.py): one row a store, its
    # document MACed like a key's and the token's PIN sealed beside it
    6: """
    CREATE TABLE key_stores (
        store_id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        doc BLOB NOT NULL,
        mac BLOB NOT NULL,
        nonce BLOB NOT NULL,
        sealed BLOB NOT NULL
    );
    """,
}


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would COMMIT first,
    breaking the migration's transaction)."""
    return [s.strip() for s in script.split(";") if s.strip()]


dumps = canonical_json  # a document as it is stored: the bytes that are MACed are the bytes that are stored

# what a damaged file can make sqlite3 raise: its own errors, and
# UnicodeDecodeError when a damaged schema makes an error message non-UTF-8
_DB_ERRORS = (sqlite3.DatabaseError, UnicodeDecodeError)


def as_blob(value: Any, what: str) -> bytes:
    """A BLOB column's value; anything else is a damaged row."""
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    raise IntegrityError(f"{what} is damaged (a {type(value).__name__} where bytes belong)")


def _read_only_uri(path: str) -> str:
    """``mode=ro`` reads the write-ahead log through the ``-shm`` index, which
    it must be able to open or create; with no log to read (none, or empty)
    and a folder that cannot take a ``-shm``, ``immutable=1`` reads the file
    alone, which is then all there is."""
    from urllib.parse import quote

    wal = path + "-wal"
    has_log = os.path.exists(wal) and os.path.getsize(wal) > 0
    can_index = os.path.exists(path + "-shm") or os.access(os.path.dirname(path) or ".", os.W_OK)
    return f"file:{quote(path)}?" + ("mode=ro" if has_log or can_index else "immutable=1")


def connect(path: str, read_only: bool = False) -> sqlite3.Connection:
    try:
        target, uri = (_read_only_uri(path), True) if read_only else (path, False)
        conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False, uri=uri)
        # FULL: a committed key survives power loss, not only a killed process
        conn.execute("PRAGMA synchronous=FULL")
        # ended sessions and destroyed material are overwritten, whatever the
        # SQLite build's default
        conn.execute("PRAGMA secure_delete=ON")
    except _DB_ERRORS as exc:
        raise IntegrityError(f"{path}: cannot open the keyring database: {exc}") from exc
    return conn


def create_database(path: str, header: bytes, header_mac: bytes, extra_meta: dict[str, bytes] | None = None) -> None:
    """Build a complete keyring in a temporary file, then link it into place,
    so that a concurrent ``init`` or reader never sees a half-made keyring."""
    from kmsctl.errors import AlreadyExistsException

    tmp = f"{path}.init-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript("BEGIN;" + SCHEMA + "COMMIT;")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO meta(name, value) VALUES (?, ?)",
            [("schema_version", b"1"), ("header", header), ("header_mac", header_mac), *(extra_meta or {}).items()],
        )
        for version in range(2, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(version).encode(),))
        conn.execute("COMMIT")
        conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise AlreadyExistsException(
                f"a keyring already exists at {path}", hint="use it, or pick another --home"
            ) from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                os.unlink(tmp + suffix)


class Database(ConnectionState):
    """Rows in and out; no cryptography beyond what the caller's ``Sealer`` does."""

    busy_timeout_s = BUSY_TIMEOUT_S

    def __init__(self, path: str, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.conn = connect(path, read_only)
        _OPEN.add(self)
        self._depth = 0
        self._writing = False
        # called after each outermost write transaction commits (keyring.epoch)
        self.after_commit: Callable[[], None] | None = None
        self._init_state()  # ConnectionState: cached(), relaxed_durability()

    # ----- transactions -----
    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @property
    def in_write_transaction(self) -> bool:
        return self._depth > 0 and self._writing

    @contextmanager
    def write(self, state: bool = True) -> Iterator[None]:
        """BEGIN IMMEDIATE: one writer at a time, others wait (busy timeout).
        ``state`` False: the transaction writes the audit trail only (its
        tables and meta rows), so the rows ``cached`` keeps stay valid."""
        if self._depth and not self._writing:
            # upgrading a read snapshot fails at once (SQLITE_BUSY_SNAPSHOT)
            # whenever another process has committed since it began
            raise RuntimeError("a write inside a read snapshot")
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self.read_only:
            raise AccessDeniedException(
                "read-only mode: this command would write the keyring", hint="run it without --read-only"
            )
        self._durable()
        self._begin_immediate()
        self._depth, self._writing = 1, True
        if state:
            self._generation += 1  # before anything is written: rolled back or not, cached rows are dropped
        try:
            yield
        except BaseException:
            self._depth = 0
            with suppress(*_DB_ERRORS):  # the first error is the one to report
                self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            # the commit counter moves with every write transaction (keyring.epoch)
            self._exec("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'epoch'")
        except BaseException:
            with suppress(*_DB_ERRORS):
                self.conn.execute("ROLLBACK")
            raise
        self._exec("COMMIT")
        if self.after_commit is not None:
            self.after_commit()

    @contextmanager
    def read(self) -> Iterator[None]:
        """A consistent snapshot for multi-row reads."""
        if self._depth:
            yield
            return
        self._exec("BEGIN")
        self._depth, self._writing, self._checked = 1, False, False
        try:
            yield
        except BaseException:
            self._depth = 0
            with suppress(*_DB_ERRORS):
                self.conn.execute("COMMIT")
            raise
        self._depth = 0
        self._exec("COMMIT")

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, args)
        except sqlite3.OperationalError as exc:
            if busy(exc):
                from kmsctl.errors import ConflictException

                raise ConflictException(f"the keyring is busy: {exc}", hint="retry") from exc
            raise IntegrityError(f"{self.path}: {exc}") from exc
        except _DB_ERRORS as exc:
            raise IntegrityError(f"{self.path}: {exc}") from exc

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._exec(sql, args).fetchall()
        except _DB_ERRORS as exc:
            raise IntegrityError(f"{self.path}: {exc}") from exc

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        if not self._depth:  # a change in autocommit: durable, and cached rows may be stale
            self._durable()
            self._generation += 1
        return self._exec(sql, args).rowcount

    def vacuum(self) -> int:
        """Give the space of deleted rows back to the file system (VACUUM,
        then a checkpoint that truncates the WAL); outside any transaction.
        The copy VACUUM builds stays in memory, never in a temporary file.
        Returns the bytes given back (keyring.db and its WAL), 0 if SQLite
        could not do it now (another writer, no room for the copy): the rows
        are deleted either way, and their space is reused by later writes."""
        if self._depth:
            raise RuntimeError("VACUUM inside a transaction")

        def size() -> int:
            return sum(os.path.getsize(self.path + s) for s in ("", "-wal") if os.path.exists(self.path + s))

        before = size()
        try:
            self.conn.execute("PRAGMA temp_store=MEMORY")
            self.conn.execute("VACUUM")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except _DB_ERRORS:
            return 0
        return max(before - size(), 0)

    # ----- meta -----
    def meta(self, name: str) -> bytes | None:
        rows = self.query("SELECT value FROM meta WHERE name = ?", (name,))
        if not rows:
            return None
        value = rows[0][0]
        if isinstance(value, str):  # as kmsctl 0.1 (schema 1) wrote schema_version
            return value.encode()
        return as_blob(value, f"{self.path}: keyring meta {name}")

    def set_meta(self, name: str, value: bytes) -> None:
        self.execute("INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)", (name, value))

    def schema_version(self) -> int:
        raw = self.meta("schema_version")
        if raw is None:
            raise IntegrityError(f"{self.path}: not a kmsctl keyring (no schema version)")
        if not raw.isdigit() or int(raw) < 1:
            raise IntegrityError(f"{self.path}: the keyring schema version {raw[:20]!r} is damaged")
        return int(raw)

    def migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise IntegrityError(
                f"{self.path}: keyring schema {version} is newer than this kmsctl ({SCHEMA_VERSION})",
                hint="upgrade kmsctl",
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise AccessDeniedException(
                f"{self.path}: keyring schema {version} must be upgraded to {SCHEMA_VERSION}, "
                "which read-only mode cannot do",
                hint="run one command without --read-only where the keyring is writable",
            )
        with self.write():
            # another process may have migrated while this one waited for the lock
            current = self.schema_version()
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[v]):
                    self.execute(statement)
            self.set_meta("schema_version", str(SCHEMA_VERSION).encode())

    def epoch(self) -> int:
        """The commit counter (``meta.epoch``); a missing or damaged one is damage."""
        raw = self.meta("epoch")
        if raw is None or not raw.isdigit():
            raise IntegrityError(f"{self.path}: the keyring's commit counter is missing or damaged")
        return int(raw)

    def integrity_check(self) -> str | None:
        """SQLite's full ``PRAGMA integrity_check`` (every page, every index
        against its table): None if it finds nothing, else its first findings."""
        try:
            rows = self.conn.execute("PRAGMA integrity_check(20)").fetchall()
        except _DB_ERRORS as exc:
            return str(exc)
        found = [str(r[0]) for r in rows]
        if found == ["ok"]:
            return None
        return "; ".join(found[:5]) + (f" (and {len(found) - 5} more)" if len(found) > 5 else "")

    def close(self) -> None:
        with suppress(*_DB_ERRORS):
            self.conn.close()
        _OPEN.discard(self)


_OPEN: weakref.WeakSet[Database] = weakref.WeakSet()  # weak: a forgotten Database still closes


def close_all() -> None:
    """Close every keyring this process opened: the last close checkpoints the
    WAL into keyring.db, so that the file alone (a backup, a copy) holds every
    committed change."""
    for db in list(_OPEN):
        db.close()


def require_row(rows: list[tuple[Any, ...]], what: str) -> tuple[Any, ...]:
    if not rows:
        raise NotFoundException(what)
    return rows[0]

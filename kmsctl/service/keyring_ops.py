"""kmsctl's own operations on the keyring rather than its keys: Unlock (a new
session), Lock, ChangePassphrase and the keyring's status. They pass the
dispatch point like every operation (``keyring=True``: no due work of time
first); the first three are recorded, status is not.

Which credential unlocks the keyring is the client's ``unlocker``: for Unlock
and ChangePassphrase the caller gives one that takes the passphrase, never a
session, so that a session cannot extend itself and a passphrase change
proves the passphrase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kmsctl import errors as E
from kmsctl import model
from kmsctl.keyring.root import describe as describe_token
from kmsctl.service.base import LocalKMSBase, check_enum, operation, to_datetime


class KeyringOps(LocalKMSBase):
    @operation("Unlock", writes=True, keyring=True, unlogged=("SessionToken", "Expires"))
    def unlock(self, *, TtlSeconds: int) -> dict[str, Any]:
        """A session of TtlSeconds: {"SessionToken", "Expires"}. The token
        never reaches the record; its ttlSeconds does."""
        if not isinstance(TtlSeconds, int) or isinstance(TtlSeconds, bool):
            raise E.ValidationException("TtlSeconds must be a whole number of seconds")
        if not 1 <= TtlSeconds <= model.SESSION_TTL_MAX_S:
            raise E.validation_error(
                TtlSeconds, "ttlSeconds", f"Member must have value between 1 and {model.SESSION_TTL_MAX_S}"
            )
        token, expires = self.keyring.new_session(self.clock(), TtlSeconds)
        return {"SessionToken": token, "Expires": to_datetime(expires)}

    @operation("Lock", unlock=False, writes=True, keyring=True, unlogged=("SessionsEnded",))
    def lock(self) -> dict[str, Any]:
        """End every session of the keyring (no unlock needed: {"SessionsEnded": n})."""
        return {"SessionsEnded": self.keyring.end_sessions()}

    @operation("ChangePassphrase", writes=True, keyring=True, transaction=False, unlogged=("NewPassphrase",))
    def change_passphrase(
        self, *, NewPassphrase: bytes | Callable[[], bytes], Kdf: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """Re-wrap the master key under NewPassphrase (bytes, or a function
        that asks for it once the current one has unlocked); every session
        ends, the keys are untouched. The stored Argon2id cost is kept, raised
        to Kdf's values (config.toml's kdf.*) where they are higher."""
        new = NewPassphrase() if callable(NewPassphrase) else NewPassphrase
        if not isinstance(new, bytes) or not new:
            raise E.ValidationException("NewPassphrase must be a non-empty byte string")
        self.keyring.change_passphrase(new, Kdf or None)
        return {}

    @operation("UpdateRootOfTrust", writes=True, keyring=True, transaction=False, unlogged=("Enrol",))
    def update_root_of_trust(
        self,
        *,
        Action: str,
        Enrol: Callable[[str], tuple[dict[str, Any], bytes]] | None = None,
        Token: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """kmsctl's own: a PKCS#11 token as the keyring's second factor.
        Action "AddToken" enrols one through Enrol (kmsctl.keyring.root),
        "RemoveToken" drops it, "InitToken" records the one init enrolled.
        The header is re-wrapped atomically, every session ends, the keys are
        untouched. The record names the token (``Token``: label, serial), never its PIN."""
        check_enum(Action, "action", ("AddToken", "RemoveToken", "InitToken"))
        had = self.keyring.token_stanza is not None
        if Action == "AddToken":
            if had:
                raise E.AlreadyExistsException(
                    "the keyring already has a token", hint="remove it first: passwd --remove-pkcs11"
                )
            if Enrol is None:
                raise E.ValidationException("AddToken needs Enrol")
            stanza, share = Enrol(self.keyring.keyring_id)
            self.keyring.set_token(stanza, share)
        elif Action == "RemoveToken":
            if not had:
                raise E.NotFoundException("the keyring has no token")
            self.keyring.set_token(None, None)
        elif not had:
            raise E.NotFoundException("the keyring has no token")
        return {"Action": Action, "Token": dict(Token or {})}

    @operation("GetKeyringStatus", unlock=False, keyring=True, audited="never")
    def keyring_status(self, *, SessionToken: str | None = None) -> dict[str, Any]:
        """Whether the keyring is protected, locked or unlocked (by
        SessionToken, when given), and what it holds. Needs no passphrase."""
        now = self.clock()
        state, expires = "locked", None
        if not self.keyring.needs_credential:
            state = "unprotected"
        elif SessionToken:
            try:
                self.keyring.unlock_with_session(SessionToken, now)
                state, expires = "unlocked", self.keyring.session_expires(SessionToken)
            except E.AccessDeniedException as exc:
                state = f"locked ({exc.message})"
        by_state = dict(self.db.query("SELECT key_state, count(*) FROM keys GROUP BY key_state"))
        return {
            "FormatVersion": int(self.db.meta("schema_version") or b"0"),
            "Protected": self.keyring.protected,
            "State": state,
            "SessionExpires": to_datetime(expires) if expires else None,
            "Keys": sum(by_state.values()),
            "KeysByState": by_state,
            "Aliases": self.db.query("SELECT count(*) FROM aliases")[0][0],
            "ActiveSessions": self.keyring.count_sessions(now),
            "Region": self.keyring.region,
            "AWSAccountId": self.keyring.account,
            "Token": describe_token(self.keyring),
        }

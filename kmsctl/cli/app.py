"""The per-invocation environment commands use: options, streams, terminal
detection, the clock, and the (lazily opened) KMS client. Tests replace parts
of it rather than patching globals."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from kmsctl.backends.aws import AwsKMS
    from kmsctl.keyring.keyring import Keyring
    from kmsctl.keyring.unlock import UnlockSources
    from kmsctl.service import LocalKMS


_FALSE = ("", "0", "false", "no", "off")


def no_input_reason(flag: bool, env: Mapping[str, str]) -> str | None:
    """Why prompting is off, or None: --no-input; else KMSCTL_NO_INPUT when
    set (0, false, no, off or empty turn it back on); else CI set to anything
    but those values (GitHub, GitLab, Buildkite, CircleCI set CI=true)."""
    if flag:
        return "--no-input"
    if "KMSCTL_NO_INPUT" in env:
        return None if env["KMSCTL_NO_INPUT"].strip().lower() in _FALSE else "KMSCTL_NO_INPUT"
    ci = env.get("CI")
    if ci is not None and ci.strip().lower() not in _FALSE:
        return f"CI={ci}"
    return None


def default_home(env: Mapping[str, str]) -> str:
    import platformdirs

    return str(platformdirs.user_config_dir("kmsctl"))


class App:
    def __init__(
        self,
        home: str,
        output: str | None = "auto",
        no_color: bool | None = False,
        quiet: bool = False,
        passphrase_file: str | None = None,
        debug: bool = False,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        prompt: Callable[[str], str] | None = None,
        flags: Mapping[str, Any] | None = None,
        read_only: bool = False,
        no_input: bool = False,
        principal: str | None = None,
        grant_tokens: list[str] | None = None,
    ) -> None:
        self.home = home
        self.read_only = read_only
        # None: not given on the command line; resolved from the environment,
        # config.toml or the default when first read (kmsctl.config.resolve)
        self._output = output
        self._no_color = no_color
        self.flags: dict[str, Any] = dict(flags or {})  # config key -> value given as a flag
        self._config: dict[str, Any] | None = None
        self.quiet = quiet
        self.passphrase_file = passphrase_file
        self.debug = debug
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.clock = clock
        self.prompt = prompt
        self.no_input_flag = no_input
        self._keyring: Keyring | None = None
        self._kms: LocalKMS | None = None
        self._remote: AwsKMS | None = None
        self.principal = principal  # --principal: act as this principal (access control)
        self.grant_tokens = grant_tokens or []
        self.dry_run = False  # --dry-run on an operation that takes DryRun

    @classmethod
    def from_options(cls, *, home: str | None, **kwargs: Any) -> App:
        return cls(home=os.path.abspath(home) if home else default_home(os.environ), **kwargs)

    # ----- settings (config.toml, read lazily: --help and completion never open it) -----
    @property
    def output(self) -> str:
        if self._output is None:
            self._output = str(self.setting("output")[0])
        return self._output

    @output.setter
    def output(self, value: str) -> None:
        self._output = self.flags["output"] = value

    @property
    def no_color(self) -> bool:
        if self._no_color is None:
            self._no_color = not self.setting("color")[0]
        return self._no_color

    def config(self) -> dict[str, Any]:
        if self._config is None:
            from kmsctl import config

            self._config = config.load(self.home)
        return self._config

    def setting(self, name: str) -> tuple[Any, str]:
        """(value, origin) of a config key: flag > environment > config.toml > default."""
        from kmsctl import config

        return config.resolve(name, flags=self.flags, env=self.env, config=self.config)

    @property
    def no_input(self) -> str | None:
        """Why kmsctl must not prompt (--no-input, KMSCTL_NO_INPUT, CI), or None."""
        return no_input_reason(self.no_input_flag, self.env)

    # ----- streams -----
    @property
    def stdout(self) -> BinaryIO:
        return sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout  # type: ignore[return-value]

    def stdout_is_tty(self) -> bool:
        try:
            return sys.stdout.isatty()
        except (AttributeError, ValueError):
            return False

    def mode(self) -> str:
        """The effective -o: auto becomes table on a terminal, text otherwise."""
        if self.output == "auto":
            return "table" if self.stdout_is_tty() else "text"
        return self.output

    def info(self, message: str) -> None:
        """An informational message on stderr; -q silences it."""
        if not self.quiet:
            self.warn(message)

    def warn(self, message: str) -> None:
        """A warning on stderr, which -q does not silence; control characters
        (from a KEY or file name given) are escaped."""
        from kmsctl.text import escape

        sys.stderr.write(escape(message, backslash=False) + "\n")
        sys.stderr.flush()

    def write(self, data: bytes) -> None:
        self.stdout.write(data)
        self.stdout.flush()

    def write_text(self, text: str) -> None:
        try:  # a path that was not UTF-8 (--home) goes out as the bytes it was
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "backslashreplace")
        self.write(data)

    # ----- keyring and client -----
    def sources(self) -> UnlockSources:
        from kmsctl.keyring.unlock import UnlockSources, terminal_prompt

        return UnlockSources(
            env=self.env,
            passphrase_file=self.passphrase_file,
            prompt=self.prompt or terminal_prompt,
            no_input=self.no_input,
            warn=self.warn,
            pkcs11_module=lambda: self.setting("pkcs11.module")[0],  # config.toml read only for a token
        )

    @property
    def remote(self) -> bool:
        """The aws backend: --backend aws, or an endpoint URL (flag, environment, config.toml)."""
        backend, origin = self.setting("backend")
        # an endpoint URL implies aws, unless local is asked for by name
        return backend == "aws" or (origin == "default" and self.setting("endpoint_url")[0] is not None)

    def refuse_remote(self, what: str) -> None:
        """A local-only command or option, on the aws backend: exit 2."""
        if self.remote:
            from kmsctl.backends.aws import local_only

            raise local_only(what)

    def aws(self) -> AwsKMS:
        """The aws backend's client (boto3 is imported when an operation first needs it)."""
        if self._remote is None:
            from kmsctl.backends.aws import AwsKMS

            if self.principal is not None:
                raise self._local_option("--principal", "act as a principal with --profile instead")
            if self.read_only:  # fail closed: writes could not be refused there
                raise self._local_option("--read-only", "use credentials that may only read")
            self._remote = AwsKMS(
                endpoint_url=self.setting("endpoint_url")[0],
                profile=self.setting("profile")[0],
                region=self.setting("region")[0] or self.env.get("AWS_DEFAULT_REGION") or None,
                env=self.env,
            )
            self._remote.grant_tokens = self.grant_tokens
            self._remote.dry_run = self.dry_run
        return self._remote

    def _local_option(self, option: str, hint: str) -> Exception:
        from kmsctl.errors import UsageError

        return UsageError(f"{option} works on the local keyring only, and the backend is aws", hint=hint)

    def keyring(self) -> Keyring:
        self.refuse_remote("the keyring")
        if self._keyring is None:
            from kmsctl.keyring.keyring import Keyring

            self._keyring = Keyring(self.home, read_only=self.read_only)
            if self.read_only:
                self.warn("kmsctl: read-only mode: this command leaves no audit record, and writes are refused")
        return self._keyring

    def kms(self) -> LocalKMS:
        """The KMS client; it unlocks the keyring (a session, else a passphrase) when an
        operation first needs it. On the aws backend, the boto3 client (the same
        operations, names and answers; the local-only names are refused)."""
        if self.remote:
            return self.aws()  # type: ignore[return-value]
        if self._kms is None:
            from kmsctl.keyring.unlock import unlock as do_unlock
            from kmsctl.service import LocalKMS

            keyring = self.keyring()
            # unlocked by the first operation that needs it, so that a wrong
            # passphrase is recorded in the audit trail under that operation
            kms = LocalKMS(
                keyring,
                clock=self.clock,
                unlocker=lambda: do_unlock(keyring, self.sources(), self.clock(), kms.record_failed_try),
            )
            kms.act_as(self.principal)
            kms.grant_tokens = self.grant_tokens
            kms.dry_run = self.dry_run
            self._kms = kms
        return self._kms

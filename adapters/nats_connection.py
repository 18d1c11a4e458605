"""The connection to NATS, made from Settings: user and password, token, creds file, TLS CA.

Its failures become NatsUnavailableError with one line that names the servers and
the reason but never a password, token or the userinfo of a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
from nats.aio.client import Client

from homeledger.adapters.errors import ConfigError, NatsUnavailableError
from homeledger.adapters.settings import Settings

# Everything nats-py raises for a connection, a request or a JetStream API call.
NATS_FAILURES: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    TimeoutError,
    OSError,
)


def display_servers(url: str) -> str:
    """The server list without any userinfo (a user, password or token in the URL)."""
    shown = []
    for part in url.split(","):
        parts = urlsplit(part.strip())
        host = parts.hostname or "?"
        port = f":{parts.port}" if _port(parts) else ""
        shown.append(f"{parts.scheme or 'nats'}://{host}{port}")
    return ",".join(shown)


def _port(parts: Any) -> int | None:
    try:
        return int(parts.port) if parts.port else None
    except ValueError:
        return None


class _Failures:
    """The errors nats-py reports while connecting, kept so that a failure can say why.

    A refused credential or an untrusted certificate will not change on retry, so it
    ends the first connection attempt at once instead of after every retry. A request
    the server refuses for want of a permission gets no answer at all (it times out):
    the server's reason is kept (`refused`), and said once on `report`.
    """

    def __init__(self, report: Callable[[str], None] | None = None) -> None:
        self.last: BaseException | None = None
        self.fatal = asyncio.Event()
        self.denied: str | None = None
        self.report = report

    async def record(self, error: Exception) -> None:
        if _is_permission_error(error):
            reason = str(error).strip().splitlines()[0].removeprefix("nats: ")
            if reason != self.denied and self.report is not None:
                self.report(f"NATS refused: {reason}")
            self.denied = reason
            return
        if self.fatal.is_set():
            return  # keep the reason that ends the attempt, not what followed it
        self.last = error
        if isinstance(error, ssl.SSLCertVerificationError) or _is_auth_error(error):
            self.fatal.set()


# Each connection's failures, for `refused`.
_FAILURES: weakref.WeakKeyDictionary[Client, _Failures] = weakref.WeakKeyDictionary()


def refused(client: Client) -> str | None:
    """The last permission the server refused this connection (its reason), if any."""
    failures = _FAILURES.get(client)
    return failures.denied if failures is not None else None


def _is_permission_error(error: BaseException) -> bool:
    return "permissions violation" in str(error).lower()


def _is_auth_error(error: BaseException) -> bool:
    text = str(error).lower()
    return "authorization violation" in text or "authentication" in text


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.nats_ca:
        return None
    ca = Path(settings.nats_ca).expanduser()
    if not ca.is_file():
        raise ConfigError(f"NATS CA file {str(ca)!r} does not exist")
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        reason = exc.__class__.__name__
        raise ConfigError(f"NATS CA file {str(ca)!r} cannot be used: {reason}") from None


def connect_options(settings: Settings) -> dict[str, Any]:
    """nats-py connect() keyword arguments for the configured authentication and TLS."""
    options: dict[str, Any] = {
        "servers": [s.strip() for s in settings.nats_url.split(",") if s.strip()],
    }
    if not options["servers"]:
        raise ConfigError("--nats needs at least one server URL")
    if settings.nats_user is not None:
        options["user"] = settings.nats_user
        options["password"] = (
            settings.nats_password.get_secret_value() if settings.nats_password else ""
        )
    if settings.nats_token is not None:
        options["token"] = settings.nats_token.get_secret_value()
    if settings.nats_creds:
        creds = Path(settings.nats_creds).expanduser()
        if not creds.is_file():
            raise ConfigError(f"NATS credentials file {str(creds)!r} does not exist")
        options["user_credentials"] = str(creds)
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
    return options


async def connect(
    settings: Settings, *, name: str = "homeledger", reconnect_forever: bool = False,
    connect_timeout: float | None = None, on_event: Callable[[str], None] | None = None,
) -> Client:  # fmt: skip
    """A connection, or NatsUnavailableError saying why none could be made.

    The first connection fails fast; once connected, a relay or consumer keeps
    reconnecting through outages (`reconnect_forever`).
    """
    failures = _Failures(on_event)
    options = connect_options(settings)
    connect_timeout = connect_timeout or settings.nats_timeout
    report = on_event or (lambda _line: None)

    async def reconnected() -> None:
        report("reconnected to NATS")

    # A hard limit: nats-py retries a failed TLS handshake without end.
    limit = 2 * connect_timeout * len(options["servers"]) + 2
    attempt = asyncio.ensure_future(nats.connect(
        **options, name=name, connect_timeout=connect_timeout, allow_reconnect=True,
        max_reconnect_attempts=1, reconnect_time_wait=0.5,
        error_cb=failures.record, reconnected_cb=reconnected,
    ))  # fmt: skip
    fatal = asyncio.ensure_future(failures.fatal.wait())
    try:
        await asyncio.wait({attempt, fatal}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        fatal.cancel()
    if not attempt.done():
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
        raise NatsUnavailableError(explain(
            failures.last or TimeoutError(), settings.nats_url, settings, connecting=True
        ))  # fmt: skip
    try:
        client = attempt.result()
    except NATS_FAILURES as exc:
        raise NatsUnavailableError(
            explain(failures.last or exc, settings.nats_url, settings, connecting=True)
        ) from None
    if reconnect_forever:
        # The option is read on each reconnect attempt: from now on, never give up.
        client.options["max_reconnect_attempts"] = -1
    _FAILURES[client] = failures
    return client


def explain(error: BaseException, url: str, settings: Settings | None = None, *,
            connecting: bool = False, client: Client | None = None) -> str:  # fmt: skip
    """One line about a NATS failure, with no secret in it. With the `client`, a request
    that timed out because the server refused a permission says so."""
    where = display_servers(url)
    text = str(error)
    lowered = text.lower()
    denied = refused(client) if client is not None else None
    if denied and isinstance(error, TimeoutError | nats.errors.TimeoutError):
        return f"NATS at {where} refused: {denied} (the credential lacks that permission)"
    if _is_auth_error(error):
        how = _auth_kind(settings)
        return f"NATS at {where} refused the {how} (authorization violation)"
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = getattr(error, "verify_message", "") or "certificate verify failed"
        return f"NATS at {where}: TLS certificate not trusted ({reason}); check --nats-ca"
    if isinstance(error, ssl.SSLError):
        return f"NATS at {where}: TLS handshake failed ({error.reason or 'SSL error'})"
    if connecting and isinstance(error, ConnectionResetError | nats.errors.UnexpectedEOF):
        return (f"NATS at {where} closed the connection during the handshake "
                "(credentials refused, or TLS required?)")
    if isinstance(error, nats.errors.NoServersError | ConnectionRefusedError):
        return f"NATS at {where} is unreachable (no server answered)"
    if isinstance(error, TimeoutError | nats.errors.TimeoutError):
        return f"NATS at {where} did not answer in time"
    if "tls" in lowered and "required" in lowered:
        return f"NATS at {where} requires TLS: use a tls:// URL and --nats-ca"
    detail = _scrub(text.splitlines()[0] if text else type(error).__name__, settings)
    return f"NATS at {where} failed: {detail}"


def _auth_kind(settings: Settings | None) -> str:
    if settings is None:
        return "credentials"
    if settings.nats_creds:
        return "credentials file"
    if settings.nats_token is not None:
        return "token"
    if settings.nats_user is not None:
        return f"user {settings.nats_user!r} or its password"
    return ("connection: it needs credentials "
            "(--nats-user/--nats-password, --nats-token or --nats-creds)")


_USERINFO = re.compile(r"://[^\s]*@")


def _scrub(text: str, settings: Settings | None) -> str:
    """Remove any configured secret that a library message might echo."""
    text = _USERINFO.sub("://***@", text)  # a server URL echoed with its credentials
    if settings is None:
        return text
    for secret in (settings.nats_password, settings.nats_token):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "***")
    return text


async def close(client: Client, settings: Settings) -> None:
    """Close a connection without waiting more than the NATS timeout (a server that
    stopped answering cannot hold the command: what was not flushed is retried)."""
    with contextlib.suppress(*NATS_FAILURES):
        await asyncio.wait_for(client.close(), settings.nats_timeout)


@contextlib.asynccontextmanager
async def session(
    settings: Settings, *, name: str, reconnect_forever: bool = False,
    on_event: Callable[[str], None] | None = None,
) -> AsyncIterator[Client]:  # fmt: skip
    """A connection for the block: its NATS failures become NatsUnavailableError (one line,
    no secret), and it is closed within the NATS timeout whatever happens."""
    client = await connect(settings, name=name, reconnect_forever=reconnect_forever,
                           on_event=on_event)  # fmt: skip
    try:
        yield client
    except NATS_FAILURES as failure:
        raise NatsUnavailableError(
            explain(failure, settings.nats_url, settings, client=client)
        ) from None
    finally:
        await close(client, settings)

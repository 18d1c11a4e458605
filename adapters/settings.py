"""One settings object, read once: defaults, then environment, then explicit flags.

The CLI maps each flag to its HOMELEDGER_* variable (click's envvar); everything
else reads this object. Secrets are kept out of every printable form.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from homeledger.adapters.envelope import LEDGER_ID

DEFAULT_STORE = "sqlite:///homeledger.db"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_STREAM = "HOMELEDGER"
APP_NAME = "homeledger"


class ConfigError(ValueError):
    """A setting that cannot be used as given (a bad store URL, say)."""


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    store: str = DEFAULT_STORE
    nats_url: str = DEFAULT_NATS_URL
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_creds: str | None = None
    nats_ca: str | None = None
    stream: str = DEFAULT_STREAM
    actor: str = ""
    cipher_key: SecretStr | None = None
    snapshot_every: int = 500

    @field_validator("stream")
    @classmethod
    def _stream_name(cls, value: str) -> str:
        if not value or _BAD_STREAM_CHAR.search(value):
            raise ValueError(
                f"stream name {value[:40]!r} must be non-empty, without spaces, control "
                "characters, '.', '*', '>', '/' or '\\'"
            )
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_servers(cls, value: str) -> str:
        for part in value.split(","):
            problem = _nats_url_problem(part.strip())
            if problem:
                shown = _mask_unparsable(part.strip())  # no user, password or token
                raise ValueError(f"NATS URL {shown[:80]!r} {problem}")
        return value

    @field_validator("actor")
    @classmethod
    def _actor(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("actor must not contain control characters")
        if len(value) > MAX_ACTOR:
            raise ValueError(f"actor is {len(value)} characters long; at most {MAX_ACTOR}")
        if value and not value.strip():
            raise ValueError("actor must not be blank")
        return value.strip()

    def effective_actor(self) -> str:
        return self.actor or default_actor()

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in ("store", "nats_url") else value


MAX_ACTOR = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_STREAM_CHAR = re.compile(r"[\s\x00-\x1f\x7f.*>/\\]")
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def _nats_url_problem(url: str) -> str | None:
    """Why `url` cannot be a NATS server URL, or None."""
    if not url or any(char.isspace() for char in url) or _CONTROL.search(url):
        return "must be one URL per server, comma-separated, without spaces"
    if "://" not in url:
        url = f"nats://{url}"  # as nats-py reads "host:port"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has an invalid host or port"
    if parts.scheme not in NATS_SCHEMES:
        return "must start with nats://, tls://, ws:// or wss://"
    if not parts.hostname:
        return "needs a host, e.g. nats://127.0.0.1:4222"
    return None


@dataclass(frozen=True)
class StoreLocation:
    """Where the events live, as the eventsourcing library's environment."""

    kind: str  # "sqlite" or "postgresql"
    env: dict[str, str] = field(repr=False)  # holds the password
    display: str  # the URL with any password masked


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _mask_unparsable(url: str) -> str:
    """A URL that urlsplit refuses, with anything between '://' and the last '@' masked."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def store_location(url: str) -> StoreLocation:
    """Turn `sqlite:///path` or `postgresql://user:pw@host:port/db` into library settings."""
    if url.startswith("sqlite://"):
        return _sqlite_location(url)
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres_location(url)
    raise ConfigError(
        f"store URL {redact_url(url)!r} is neither sqlite:///PATH nor postgresql://USER@HOST/DB"
    )


def _sqlite_location(url: str) -> StoreLocation:
    path = url[len("sqlite://") :]
    if not path.startswith("/") or path == "/":
        raise ConfigError(f"store URL {url!r} needs a path: sqlite:///homeledger.db")
    path = path[1:]  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
    if path != ":memory:":
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigError(f"store folder {str(parent)!r} does not exist")
        path = str(Path(path).expanduser())
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "10",
        "APPLICATION_RECORDER_TOPIC": "homeledger.adapters.recorders:LedgerSQLiteRecorder",
    }
    return StoreLocation("sqlite", env, url)


def _postgres_location(url: str) -> StoreLocation:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(
            f"store URL {_mask_unparsable(url)!r} is not a valid URL: "
            "postgresql://user:password@host:5432/dbname"
        ) from None
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname:
        raise ConfigError(
            f"store URL {redact_url(url)!r} needs a host and a database: "
            "postgresql://user:password@host:5432/dbname"
        )
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigError(f"store URL {redact_url(url)!r} has an invalid port") from None
    query = parse_qs(parts.query)
    timeout = query.get("connect_timeout", ["5"])[0]
    if not timeout.isdigit() or int(timeout) < 1:
        raise ConfigError(
            f"store URL {redact_url(url)!r}: connect_timeout must be a whole number of "
            f"seconds, not {timeout[:20]!r}"
        )
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or "") or default_actor(),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": timeout,
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "8",
        "POSTGRES_SCHEMA": query.get("schema", ["public"])[0],
        # Off on purpose: with it on, notification-log readers skip events under
        # concurrent writers (eventsourcing 9.5.6).
        "POSTGRES_ENABLE_DB_FUNCTIONS": "no",
        "APPLICATION_RECORDER_TOPIC": "homeledger.adapters.recorders:LedgerPostgresRecorder",
        # The store creates the tables itself, once and serially (see LedgerStore).
        "CREATE_TABLE": "no",
    }
    return StoreLocation("postgresql", env, redact_url(url))


__all__ = ["LEDGER_ID", "ConfigError", "Settings", "StoreLocation", "store_location"]

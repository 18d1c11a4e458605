"""One settings object, read once: defaults, then environment, then explicit flags.

The CLI maps each flag to its HOMELEDGER_* variable (click's envvar) and hands the
values to `Settings.load`, which also reads the variables that have no flag, once.
Everything else reads this object. Secrets are kept out of every printable form.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from homeledger.adapters.defaults import (
    DEFAULT_NATS_URL,
    DEFAULT_STORE,
    DEFAULT_STREAM,
    DEFAULT_SUBJECT_PREFIX,
)
from homeledger.adapters.errors import ConfigError
from homeledger.adapters.postgres import Timeouts
from homeledger.domain.values import clean_text

APP_NAME = "homeledger"

# Settings that have no flag: field name -> environment variable.
ENVIRONMENT_ONLY = {
    "cipher_key": "HOMELEDGER_CIPHER_KEY",
    "projection_page": "HOMELEDGER_PROJECTION_PAGE",
    "projection_snapshot_every": "HOMELEDGER_PROJECTION_SNAPSHOT_EVERY",
    "nats_server_bin": "HOMELEDGER_NATS_SERVER_BIN",
    "store_timeout": "HOMELEDGER_STORE_TIMEOUT",
    "lock_timeout": "HOMELEDGER_LOCK_TIMEOUT",
    "nats_timeout": "HOMELEDGER_NATS_TIMEOUT",
    "subject_prefix": "HOMELEDGER_SUBJECT_PREFIX",
    "seal_key": "HOMELEDGER_SEAL_KEY",
    "seal_public_key": "HOMELEDGER_SEAL_PUBLIC_KEY",
}
DAY = 86_400.0


def default_actor() -> str:
    try:
        return clean_text(getpass.getuser())[:MAX_ACTOR] or "unknown"
    except (KeyError, OSError, ValueError):  # no user, or a name that is not clean text
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
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    actor: str = ""
    cipher_key: SecretStr | None = None
    # Facts per read-model transaction when catching up.
    projection_page: int = Field(default=5000, ge=1, le=100_000)
    # Positions between stored snapshots of the read models (as-of reads replay fewer).
    projection_snapshot_every: int = Field(default=5000, ge=1, le=10_000_000)
    # Facts between snapshots of the ledger's decision state.
    ledger_snapshot_every: int = Field(default=500, ge=0, le=10_000_000)
    nats_server_bin: str | None = None
    # Seconds: the longest wait for one answer of the store (PostgreSQL: each statement,
    # on the client and the server), for another writer's lock, for one answer of NATS.
    store_timeout: float = Field(default=60.0, gt=0, le=DAY, allow_inf_nan=False)
    lock_timeout: float = Field(default=10.0, gt=0, le=DAY, allow_inf_nan=False)
    nats_timeout: float = Field(default=5.0, gt=0, le=DAY, allow_inf_nan=False)
    # Ed25519: the private key signs seals (a file or a value); the public keys (one or
    # more, for rotation) are all `verify` needs to check them.
    seal_key: SecretStr | None = None
    seal_public_key: str | None = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **given: Any) -> Settings:
        """Settings from the flags given (already resolved with their variables) and the
        variables that have no flag; a value that cannot be used is a ConfigError."""
        env = os.environ if environ is None else environ
        values = dict(given)
        for name, variable in ENVIRONMENT_ONLY.items():
            text = env.get(variable, "").strip()
            if text and name not in values:
                values[name] = text
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    @field_validator("stream")
    @classmethod
    def _stream_name(cls, value: str) -> str:
        if not value or _BAD_STREAM_CHAR.search(value):
            raise ValueError(
                f"stream name {value[:40]!r} must be non-empty, without spaces, control "
                "characters, '.', '*', '>', '/' or '\\'"
            )
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _subject_prefix(cls, value: str) -> str:
        if not SUBJECT_TOKEN.fullmatch(value):
            raise ValueError(
                f"subject prefix {value[:40]!r} must be one NATS subject token: 1-64 of "
                "A-Z, a-z, 0-9, '_' and '-'"
            )
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_servers(cls, value: str) -> str:
        for part in value.split(","):
            problem = _nats_url_problem(part.strip())
            if problem:
                # The whole value redacted: a part cut at a comma could be half a password.
                shown = redact_url(value.strip())
                raise ValueError(f"NATS URL {shown[:120]!r} {problem}")
        return value

    @field_validator("actor")
    @classmethod
    def _actor(cls, value: str) -> str:
        # The actor is recorded in every fact: the same text rules as a name.
        value = clean_text(value, "actor") if value.strip() else value
        if len(value) > MAX_ACTOR:
            raise ValueError(f"actor is {len(value)} characters long; at most {MAX_ACTOR}")
        if value and not value.strip():
            raise ValueError("actor must not be blank")
        return value.strip()

    def effective_actor(self) -> str:
        return self.actor or default_actor()

    def timeouts(self, location: StoreLocation) -> Timeouts:
        return Timeouts(connect=location.connect_timeout, statement=self.store_timeout,
                        lock=self.lock_timeout)  # fmt: skip

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in ("store", "nats_url") else value


def _describe(error: ValidationError) -> str:
    """The first problem, named by the flag or variable that set it (never its value if
    it is a secret)."""
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    where = ENVIRONMENT_ONLY.get(name) or f"--{name.replace('_', '-')}"
    if name == "nats_url":
        where = "--nats"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] in ("int_parsing", "int_type"):
        message = "must be a whole number"
    if first["type"] in ("float_parsing", "float_type", "finite_number"):
        message = "must be a number of seconds"
    return f"{where}: {message}"


MAX_ACTOR = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A subject token that needs no quoting anywhere (NATS permissions, shells): no '.',
# no wildcard, no '$' (the server's own subjects start with it), ASCII only.
SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BAD_STREAM_CHAR = re.compile(r"[\s\x00-\x1f\x7f.*>/\\]")
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def _nats_url_problem(url: str) -> str | None:
    """Why `url` cannot be a NATS server URL, or None."""
    if not url or any(char.isspace() for char in url) or _CONTROL.search(url):
        return "must be one URL per server, comma-separated, without spaces"
    if url.count("@") > 1:
        return "has more than one '@': write an '@' inside the user or password as %40"
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
    """Where the events live: an SQLite file, or a PostgreSQL database and schema."""

    kind: Literal["sqlite", "postgresql"]
    display: str  # the URL with any password masked
    path: str = ""  # SQLite: the file, or ":memory:"
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = field(default="", repr=False)
    dbname: str = ""
    schema: str = "public"
    connect_timeout: int = 5

    @property
    def in_memory(self) -> bool:
        return self.kind == "sqlite" and self.path == ":memory:"

    def exists(self) -> bool:
        """For SQLite, whether the file is there (a PostgreSQL database is asked)."""
        return self.kind != "sqlite" or self.in_memory or Path(self.path).exists()


def redact_url(url: str) -> str:
    """`url` (or a comma-separated list of them) without its secrets: what stands
    between the scheme and the last '@' is a password, a token or a user with a
    password; only a user name before a ':' is kept (postgresql://ops:***@host/db).

    Done on the text, never by parsing: a URL that does not parse (a bad port, an '@'
    inside the password, no scheme at all) is masked just the same."""
    return ",".join(_redact_one(part) for part in _NEXT_URL.split(url))


_NEXT_URL = re.compile(r",(?=[A-Za-z][A-Za-z0-9+.-]*://)")  # a comma before another URL


def _redact_one(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    if "@" not in rest or scheme == "sqlite":  # a file name may hold an '@'
        return url
    userinfo, host = rest.rsplit("@", 1)
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    shown = f"{user}:***" if user and "/" not in user else "***"
    return f"{scheme}{separator}{shown}@{host}"


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
    return StoreLocation("sqlite", url, path=path)


def _postgres_location(url: str) -> StoreLocation:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(
            f"store URL {redact_url(url)!r} is not a valid URL: "
            "postgresql://user:password@host:5432/dbname"
        ) from None
    if url.split("?", 1)[0].count("@") > 1:
        raise ConfigError(
            f"store URL {redact_url(url)!r} has more than one '@': write an '@' inside the "
            "user or password as %40"
        )
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
    return StoreLocation(
        "postgresql", redact_url(url), host=parts.hostname, port=port,
        user=unquote(parts.username or "") or default_actor(),
        password=unquote(parts.password or ""), dbname=dbname,
        schema=query.get("schema", ["public"])[0], connect_timeout=int(timeout),
    )  # fmt: skip



__all__ = ["DEFAULT_NATS_URL", "DEFAULT_STORE", "DEFAULT_STREAM", "DEFAULT_SUBJECT_PREFIX",
           "ConfigError", "Settings", "StoreLocation", "store_location"]

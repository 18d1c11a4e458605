"""PostgreSQL connections that never wait without a bound.

Every connection homeledger opens (the event store's pool and the read models' own)
is a `BoundedConnection`: each wait for the server is bounded on the client side
(`Timeouts.statement`), so that a server that stops answering (a paused backend, a
network that drops packets) ends in StoreTimeoutError naming what was waited for,
never in a hang. The server is told the same bounds (a statement timeout a little
longer than the client's, so that a statement the client gave up on is cancelled, a
lock timeout, an idle-in-transaction timeout), and names the connection "homeledger"
(`pg_stat_activity.application_name`).

psycopg is imported on the first PostgreSQL connection, not with this module: a command
on a SQLite store never loads it (it takes a tenth of a second to import).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from homeledger.adapters.errors import StoreUnavailableError

if TYPE_CHECKING:
    import psycopg

APPLICATION_NAME = "homeledger"
SERVER_GRACE = 5.0  # seconds the server waits longer than the client before cancelling


class StoreTimeoutError(StoreUnavailableError):
    """The store did not answer within its bound (exit 4)."""


@dataclass(frozen=True)
class Timeouts:
    """How long homeledger waits: to connect, for one statement, for another's lock."""

    connect: float = 5.0
    statement: float = 60.0
    lock: float = 10.0

    def server_options(self) -> str:
        """libpq `options`: the server-side bounds of every session."""
        statement_ms = int((self.statement + SERVER_GRACE) * 1000)
        return (f"-c statement_timeout={statement_ms} -c lock_timeout={int(self.lock * 1000)} "
                f"-c idle_in_transaction_session_timeout={statement_ms}")  # fmt: skip


@lru_cache(maxsize=1)
def _bounded_connection() -> type[psycopg.Connection[Any]]:
    import psycopg
    from psycopg import errors as pg_errors

    class BoundedConnection(psycopg.Connection[Any]):
        """A psycopg connection whose every wait for the server has a bound."""

        timeouts = Timeouts()
        where = "PostgreSQL"

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            bound = self.timeouts.statement if timeout is None else timeout
            try:
                return super().wait(gen, interval, bound)
            except pg_errors._WaitTimeout:
                raise StoreTimeoutError(
                    f"{self.where} did not answer within {bound:g}s (a statement, or the rows "
                    "of one); raise HOMELEDGER_STORE_TIMEOUT if the server is only slow"
                ) from None

    return BoundedConnection


def bounded(timeouts: Timeouts, where: str) -> type[psycopg.Connection[Any]]:
    """A connection class with these bounds, naming the server `where` in its errors."""
    return type("BoundedConnection", (_bounded_connection(),),
                {"timeouts": timeouts, "where": where})  # fmt: skip


def pg_errors(*names: str) -> tuple[type[BaseException], ...]:
    """psycopg's exception classes of these names (default: its base Error) once psycopg is
    loaded, else none: without a PostgreSQL connection no psycopg error can be raised."""
    errors = sys.modules.get("psycopg.errors")
    return tuple(getattr(errors, name) for name in names or ("Error",)) if errors else ()


def connection_kwargs(timeouts: Timeouts) -> dict[str, Any]:
    return {"options": timeouts.server_options(), "application_name": APPLICATION_NAME,
            "connect_timeout": max(1, round(timeouts.connect))}  # fmt: skip

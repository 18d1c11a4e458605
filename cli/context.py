"""What every sub-command receives: settings, output format, and lazily built services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.bootstrap import build_application, open_store
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import LedgerStore
from homeledger.domain.commands import Command

C = TypeVar("C", bound=Command)


@dataclass
class Context:
    settings: Settings
    fmt: str = "table"
    debug: bool = False
    _app: LedgerApplication | None = None
    _store: LedgerStore | None = None
    _closers: list[Any] = field(default_factory=list)

    def app(self) -> LedgerApplication:
        """The application for recording: creates an empty store on first use."""
        if self._app is None:
            self._app = build_application(self.settings)
            self._closers.append(self._app.store.close)
        return self._app

    def store(self) -> LedgerStore:
        """The store for reading: it must already exist."""
        if self._app is not None:
            return self._app.store
        if self._store is None:
            self._store = open_store(self.settings, create=False)
            self._closers.append(self._store.close)
        return self._store

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()


pass_context = click.make_pass_decorator(Context)


def build(cls: type[C], **fields: Any) -> C:
    """A validated command from CLI values; unset options take the command's defaults."""
    return cls.model_validate({k: v for k, v in fields.items() if v is not None})


__all__ = ["Context", "ValidationError", "build", "pass_context"]

"""What every sub-command receives: settings, output format, and the services built
from them (see `bootstrap`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from homeledger.adapters.settings import Settings
    from homeledger.cli.bootstrap import Services
    from homeledger.domain.commands import Command

C = TypeVar("C", bound="Command")


@dataclass
class Context:
    settings: Settings
    services: Services
    fmt: str = "table"
    debug: bool = False

    def close(self) -> None:
        self.services.close()


pass_context = click.make_pass_decorator(Context)


def build(cls: type[C], **fields: Any) -> C:
    """A validated command from CLI values; unset options take the command's defaults."""
    return cls.model_validate({k: v for k, v in fields.items() if v is not None})


__all__ = ["Context", "build", "pass_context"]

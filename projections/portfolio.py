"""The portfolio: homes held per country on any effective date.

Stored as a log, one row per unit fact (position, country, effective date, signed
change), so "held on date D as of position N" is a sum over rows with position <= N
and effective date <= D. A reversed unit fact adds the opposite change on the reversed
fact's date, at the reversal's position. In memory it is the domain's own Portfolio, so the counts
are the very ones the pledge rules use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, ClassVar, Self

from homeledger.adapters.envelope import Envelope
from homeledger.domain import events as e
from homeledger.domain.portfolio import Portfolio
from homeledger.projections.model import Model, Rows, Table, normalise

CHANGES = Table(
    "hl_proj_portfolio",
    (("position", "INT"), ("country", "TEXT"), ("effective_date", "TEXT"), ("delta", "INT"),
     ("reference", "TEXT")),
    ("position",),
    log=True,
)  # fmt: skip
_NET_CHANGES = (
    "SELECT country, effective_date, SUM(delta) FROM hl_proj_portfolio WHERE position <= ? "
    "GROUP BY country, effective_date ORDER BY country, effective_date"
)
PORTFOLIO_COLUMNS = ("on", "country", "units")


class PortfolioModel(Model):
    NAME = "portfolio"
    TABLES = (CHANGES,)
    STATE_QUERIES: ClassVar[dict[str, str]] = {"changes": _NET_CHANGES}

    def __init__(self) -> None:
        super().__init__()
        self.portfolio = Portfolio()

    def _handlers(self) -> dict[str, Callable[[Envelope, Any], None]]:
        return {e.UnitsAcquired.TYPE: self._changed, e.UnitsDisposed.TYPE: self._changed,
                e.FactReversed.TYPE: self._reversed}  # fmt: skip

    def _changed(self, env: Envelope, ev: e.UnitsAcquired, sign: int = 1,
                 reference: str | None = None) -> None:  # fmt: skip
        delta = sign * (-ev.units if isinstance(ev, e.UnitsDisposed) else ev.units)
        reference = ev.reference if reference is None else reference
        self.portfolio.apply(ev.country, ev.effective_date, delta)
        self._append(CHANGES.name, (env.position, ev.country, ev.effective_date.isoformat(),
                                    delta, reference))  # fmt: skip

    def _reversed(self, env: Envelope, ev: e.FactReversed) -> None:
        taken = ev.reversed_fact
        if isinstance(taken, e.UnitsAcquired):  # or its subclass, UnitsDisposed
            self._changed(env, taken, -1, f"reversal of position {ev.reversed_position}")

    def state_rows(self) -> Rows:
        return {
            "changes": [
                (country, on.isoformat(), delta)
                for country, entries in sorted(self.portfolio.changes.items())
                for on, delta in entries
            ]
        }

    @classmethod
    def from_state(cls, rows: Rows, position: int) -> Self:
        model = cls()
        model.position = position
        for country, on, delta in normalise(rows.get("changes", [])):
            model.portfolio.apply(country, date.fromisoformat(on), int(delta))
        return model

    def held_on(self, on: date) -> list[dict[str, Any]]:
        """Homes held per country on a date (countries holding none are left out)."""
        return [
            {"on": on.isoformat(), "country": country, "units": units}
            for country, units in self.portfolio.held_by_country(on).items()
        ]

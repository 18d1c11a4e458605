"""All read models together, in memory: the one API for anyone who projects facts.

    state = ReadModels()
    for envelope in envelopes:          # from the store, or from NATS
        state.apply(envelope)
    state.balance_rows(by="country")
    state.audit_rows("gw-bissau-village")
    state.portfolio(date(2021, 12, 31))
    state.trial_balance()

The store-backed runner (`runner`) drives the very same models and writes their rows;
`as_of` rebuilds them to any past position.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from homeledger.adapters.envelope import Envelope
from homeledger.projections.audit_trail import AuditModel
from homeledger.projections.balances import BalancesModel
from homeledger.projections.double_entry import DoubleEntryModel, TrialBalance
from homeledger.projections.model import Model, Rows
from homeledger.projections.portfolio import PortfolioModel
from homeledger.projections.timeline import TimelineModel

MODEL_CLASSES: dict[str, type[Model]] = {
    cls.NAME: cls
    for cls in (BalancesModel, AuditModel, PortfolioModel, DoubleEntryModel, TimelineModel)
}
PROJECTIONS = tuple(MODEL_CLASSES)


def new_model(name: str) -> Model:
    try:
        return MODEL_CLASSES[name]()
    except KeyError:
        raise ValueError(
            f"unknown projection {name!r} (known: {', '.join(PROJECTIONS)})"
        ) from None


class ReadModels:
    """Every read model as of `position`, evolved in memory.

    With `keep_rows` (the default) the audit trails and the timeline are kept in
    memory so they can be read back; a long-running consumer that stores rows
    elsewhere passes keep_rows=False and drains `take_rows()` instead.
    """

    def __init__(self, *, keep_rows: bool = True) -> None:
        self.balances = BalancesModel()
        self.audit = AuditModel(keep_trails=keep_rows)
        self.portfolio_model = PortfolioModel()
        self.double_entry = DoubleEntryModel()
        self.timeline = TimelineModel()
        if keep_rows:
            self.timeline.kept = []
        self.keep_rows = keep_rows

    @property
    def models(self) -> dict[str, Model]:
        return {
            BalancesModel.NAME: self.balances,
            AuditModel.NAME: self.audit,
            PortfolioModel.NAME: self.portfolio_model,
            DoubleEntryModel.NAME: self.double_entry,
            TimelineModel.NAME: self.timeline,
        }

    @property
    def position(self) -> int:
        return max(model.position for model in self.models.values())

    def apply(self, envelope: Envelope) -> None:
        for model in self.models.values():
            model.apply(envelope)
        if self.keep_rows:
            self.take_rows()  # kept in the models themselves; drop the write buffers

    def take_rows(self) -> dict[str, Rows]:
        """Per model, the rows written since the last call (for whoever stores them)."""
        return {name: model.take_rows() for name, model in self.models.items()}

    # Reads.

    def balance_rows(self, by: str = "year", year: int | None = None) -> list[dict[str, Any]]:
        return self.balances.rows(by, year)

    def audit_rows(self, initiative: str) -> list[dict[str, Any]]:
        return self.audit.trail(initiative)

    def portfolio(self, on: date) -> list[dict[str, Any]]:
        return self.portfolio_model.held_on(on)

    def trial_balance(self) -> TrialBalance:
        return self.double_entry.trial_balance()

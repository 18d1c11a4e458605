"""Read models built from the ledger's facts: balances, audit trails, portfolio, double
entry, and the timeline of recording times.

`ReadModels` is the in-memory API (apply envelopes, read balances, trails,
portfolio, trial balance); `ProjectionRunner` keeps the stored models in the
store's own database up to date; `PointInTime` answers as of any past position.
"""

from homeledger.projections.read_models import PROJECTIONS, ReadModels

__all__ = ["PROJECTIONS", "ReadModels"]

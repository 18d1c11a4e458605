"""Read models built from the ledger's facts (SPEC section 3).

`ProjectionState` is the in-memory API (apply envelopes, read balances, trails,
portfolio, trial balance); `ProjectionRunner` keeps the stored models in the
store's own database up to date; `PointInTime` answers as of any past position.
"""

from homeledger.projections.state import PROJECTIONS, ProjectionState

__all__ = ["PROJECTIONS", "ProjectionState"]

"""Ledger <-> snapshot: a snapshot restores the very ledger, which decides as the original."""

from __future__ import annotations

import json

from hypothesis import given

from homeledger.adapters.hash_chain import canonical_json
from homeledger.adapters.ledger_snapshot import SNAPSHOT_FORMAT, ledger_from_dict, ledger_to_dict
from homeledger.domain import commands as c
from homeledger.domain.errors import DomainError
from homeledger.domain.events import event_data
from homeledger.domain.ledger import Allocations, Ledger, replay
from tests import strategies as s
from tests.helpers import build_accepted


@given(s.ledger_histories())
def test_snapshot_round_trips(history: list[c.Command]) -> None:
    ledger, facts = build_accepted(history)
    assert len(facts) >= 3  # init, the first acquisition and a registration are always valid
    snapshot = ledger_to_dict(ledger)
    # Allocations are not in a snapshot (the store keeps them): hand them over as kept.
    assert ledger_from_dict(snapshot, ledger.allocations) == ledger
    # Snapshots are stored as JSON: through bytes too, and to the same strings.
    stored = json.loads(canonical_json(snapshot))
    restored = ledger_from_dict(stored, ledger.allocations)
    assert restored == ledger
    assert restored is not None
    assert ledger_to_dict(restored) == snapshot
    assert replay(facts) == ledger


@given(s.ledger_histories(max_size=10), s.ledger_commands())
def test_a_restored_ledger_decides_as_the_original(
    history: list[c.Command], command: c.Command
) -> None:
    ledger, _ = build_accepted(history)
    restored = ledger_from_dict(json.loads(canonical_json(ledger_to_dict(ledger))),
                                ledger.allocations.copy())  # fmt: skip
    assert restored is not None
    outcomes = []
    for state in (ledger, restored):
        try:
            facts = state.decide(command)
        except DomainError as refused:
            outcomes.append((type(refused), str(refused)))
        else:
            # Generated allocation ids differ; everything else must not.
            outcomes.append(("accepted", [event_data(f) | {"allocation_id": None} for f in facts]))
    assert outcomes[0] == outcomes[1]


def test_a_snapshot_of_another_format_is_ignored() -> None:
    snapshot = ledger_to_dict(Ledger())
    assert ledger_from_dict(snapshot, Allocations()) == Ledger()
    assert ledger_from_dict({**snapshot, "format": SNAPSHOT_FORMAT + 1}, Allocations()) is None
    assert ledger_from_dict({}, Allocations()) is None

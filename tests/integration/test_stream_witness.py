"""The stream witness of `verify --against-nats` (projections/witness.py) on a real SQLite
store, fed the messages a stream could hold.

While the stream is an exact copy of the store, the witness does not build the read
models a second time: it takes `verify`'s replay. These tests hold it to what building
them from every message would find, for any stream (the end-to-end runs against a real
nats-server are in test_consumer_projection.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.hash_chain import compact_json
from homeledger.adapters.settings import store_location
from homeledger.adapters.stream_reader import StreamRecord
from homeledger.projections.db import ProjectionDB
from homeledger.projections.model import Model
from homeledger.projections.read_models import MODEL_CLASSES
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.verify import verify
from homeledger.projections.witness import StreamWitness
from tests.nats_helpers import store_envelopes


@dataclass
class Books:
    app: LedgerApplication
    db: ProjectionDB
    envelopes: list[dict[str, Any]]
    head: int

    def replayed(self) -> dict[str, Model]:
        report = verify(self.app.store, self.db, ProjectionRunner(self.app.store, self.db))
        assert report.ok, [c.to_dict() for c in report.checks if not c.ok]
        assert report.replayed is not None
        return report.replayed

    def witness(self, *, eager: bool = False) -> StreamWitness:
        witness = StreamWitness(self.app.store, self.db, self.head, self.replayed())
        if eager:  # build the models from every message, as the witness once always did
            witness.built = {name: cls() for name, cls in MODEL_CLASSES.items()}
        return witness


@pytest.fixture
def books(ledger: LedgerApplication, sqlite_url: str) -> Iterator[Books]:
    db = ProjectionDB(store_location(sqlite_url))
    ProjectionRunner(ledger.store, db).catch_up()
    try:
        yield Books(ledger, db, [e.to_dict() for e in store_envelopes(ledger)],
                    ledger.store.max_position())  # fmt: skip
    finally:
        db.close()


def records(payloads: Sequence[dict[str, Any] | bytes]) -> list[StreamRecord]:
    return [StreamRecord(seq, "homeledger.test", p if isinstance(p, bytes) else compact_json(p))
            for seq, p in enumerate(payloads, start=1)]  # fmt: skip


def outcome(witness: StreamWitness, stream: list[StreamRecord], batch: int) -> list[Any]:
    """The checks, and the state of the models the witness compared with the store's."""
    for start in range(0, len(stream), batch):
        witness.feed(stream[start:start + batch])
    checks = [(c.name, c.findings, c.summary) for c in witness.finish()]
    models = witness.built if witness.built is not None else witness.replayed
    assert models is not None
    return [*checks, {name: (m.position, m.state_rows()) for name, m in models.items()}]


def test_an_exact_copy_is_not_built_twice_and_passes(books: Books) -> None:
    witness = books.witness()
    checks = outcome(witness, records(list(books.envelopes)), 7)
    assert witness.built is None  # verify's replay served: nothing was built again
    assert [findings for _, findings, _ in checks[:3]] == [[], [], []]
    assert f"equal the store's at position {books.head}" in checks[2][2]


def test_stored_projections_that_differ_are_still_found_on_an_exact_copy(books: Books) -> None:
    replayed = books.replayed()
    with books.db.write() as tx:  # a stored balance edited after verify's replay
        tx.execute("UPDATE hl_proj_balance_years SET pledged = pledged + 100")
    witness = StreamWitness(books.app.store, books.db, books.head, replayed)
    found = outcome(witness, records(books.envelopes), 50)
    checks = {name: findings for name, findings, _ in found[:3]}
    assert checks["stream-copy"] == [] and checks["stream-head"] == []
    assert checks["stream-projections"] == [
        (None, "balances built from the stream differs from the store's")
    ]


def test_a_changed_message_builds_the_models_from_the_store_then_the_stream(books: Books) -> None:
    stream = list(books.envelopes)
    target = next(i for i, e in enumerate(stream) if e["type"] == "FundsAllocated")
    changed = {**stream[target], "data": {**stream[target]["data"], "amount": "1.00"}}
    stream[target] = changed
    lazy, eager = books.witness(), books.witness(eager=True)
    found = outcome(lazy, records(stream), 5)
    assert lazy.built is not None
    assert found == outcome(eager, records(stream), 5)
    checks = {name: findings for name, findings, _ in found[:3]}
    assert checks["stream-copy"][0][0] == changed["position"]
    assert checks["stream-projections"]  # its amount reached the models built from it


# Any stream: each stored event sent, left out, sent twice or sent changed; the stream
# cut short (relay lag) or given messages beyond the store's head and messages that are
# not envelopes; fed in batches of any size. Lazy and eager witnesses agree on all.

ACTIONS = st.sampled_from(["send", "send", "send", "skip", "twice", "change", "unreadable"])


def changed(envelope: dict[str, Any], how: str) -> dict[str, Any]:
    if how == "unreadable":
        return {**envelope, "data": {"no": "such field"}}
    data = dict(envelope["data"])
    for name in ("amount", "units", "year"):
        if name in data:
            data[name] = "7.00" if name == "amount" else int(data[name]) + 1
            return {**envelope, "data": data}
    return {**envelope, "actor": envelope["actor"] + "-forged"}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(actions=st.data(), cut=st.integers(0, 5), beyond=st.integers(0, 2),
       junk=st.booleans(), batch=st.integers(1, 40))  # fmt: skip
def test_lazy_and_eager_witnesses_agree_on_any_stream(
    books: Books, actions: st.DataObject, cut: int, beyond: int, junk: bool, batch: int
) -> None:
    chosen = actions.draw(st.lists(ACTIONS, min_size=books.head, max_size=books.head))
    stream: list[dict[str, Any] | bytes] = []
    for envelope, action in zip(books.envelopes, chosen, strict=True):
        if action in ("send", "twice"):
            stream.append(envelope)
        if action == "twice":
            stream.append(envelope)
        if action in ("change", "unreadable"):
            stream.append(changed(envelope, action))
    stream = stream[: len(stream) - cut]
    last = books.envelopes[-1]
    for extra in range(1, beyond + 1):
        stream.append({**last, "position": books.head + extra, "event_id": f"beyond-{extra}"})
    if junk:
        stream.insert(len(stream) // 2, b"not an envelope")
    lazy = outcome(books.witness(), records(stream), batch)
    assert lazy == outcome(books.witness(eager=True), records(stream), batch)

"""`verify --against-nats`: the published stream as a witness of the store.

    stream-copy         every stored event is in the stream exactly once, in store order,
                        with an identical envelope (so the same hash); the newest stored
                        events may be missing when the stream is a gap-free prefix of the
                        store (relay lag: they are not published yet), never older ones
    stream-head         the stream holds no event beyond the store's head: events there
                        were published and then removed from the store (truncation,
                        which the database alone cannot see)
    stream-projections  the read models built from the stream alone equal the store's
                        projections as of the stream's last position

The stream is compared with the store in one pass, batch by batch, in lockstep: the
memory it needs does not grow with the ledger (apart from one event id per event).

The read models are deterministic functions of the facts applied to them, in order. So
while every message so far is the stored envelope at the next position, field for field,
the models built from the stream are the models built from the store's first facts, and
they are not built twice: when the whole stream is an exact copy of the store up to its
head, they are `verify`'s own replay (`replayed`), compared here with the store's
projections. At the first message that is not (a gap, a different or unreadable event),
or when the stream ends before the head (relay lag), the models are built from the
store's facts up to the last identical message and from the stream's messages after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from homeledger.adapters.envelope import Envelope, decode_json, envelope_from_body
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import LedgerStore
from homeledger.adapters.stream_reader import StreamRecord, walk_stream
from homeledger.projections.as_of import PointInTime
from homeledger.projections.db import ProjectionDB
from homeledger.projections.model import Model, Rows
from homeledger.projections.read_models import MODEL_CLASSES
from homeledger.projections.verify import Check

STREAM_CHECKS = ("stream-copy", "stream-head", "stream-projections")


class StreamWitness:
    """Feed it the stream's messages in order; `finish()` returns the three checks."""

    def __init__(self, store: LedgerStore, db: ProjectionDB, head: int,
                 replayed: dict[str, Model] | None = None) -> None:  # fmt: skip
        self.store, self.db, self.head = store, db, head
        self.checks = {name: Check(name) for name in STREAM_CHECKS}
        self.stored: Iterator[_Stored] = _stored(store, head)
        self.pending: _Stored | None = self._next_stored()
        self.seen: set[str] = set()
        self.matched = self.messages = self.beyond = 0
        self.built_to = 0  # the last position applied to the models built from the stream
        # None while the stream is the store's exact copy up to `built_to` (see above).
        self.built: dict[str, Model] | None = None
        self.replayed = replayed

    def _next_stored(self) -> _Stored | None:
        return next(self.stored, None)

    def feed(self, records: list[StreamRecord]) -> None:
        for record in records:
            self._one(record)
        for model in (self.built or {}).values():
            model.take_rows()  # only the state is compared: drop the rows

    @property
    def exact(self) -> bool:
        """Every position 1..built_to is in the stream, identical, and nothing else is
        applied: the models from the stream are the store's first `built_to` facts'."""
        return self.built is None

    def _models(self) -> dict[str, Model]:
        """The models built from the stream, as of `built_to`."""
        if self.built is None:
            self.built = _replay(self.store, self.built_to)  # the identical prefix
        return self.built

    def _one(self, record: StreamRecord) -> None:
        self.messages += 1
        copy = self.checks["stream-copy"]
        payload = _payload(record.data)
        position, event_id = payload.get("position"), payload.get("event_id")
        if not isinstance(position, int) or not isinstance(event_id, str):
            copy.find(None, f"stream sequence {record.seq} is not a homeledger envelope")
            return
        if position > self.head:
            self._beyond(record, position, event_id)
            return
        # Stored events before this one that the stream skipped.
        while self.pending is not None and self.pending.position < position:
            copy.find(self.pending.position, "stored event missing from the stream")
            self.pending = self._next_stored()
        if event_id in self.seen:
            copy.find(position, f"published twice (again at stream sequence {record.seq})")
            return
        self.seen.add(event_id)
        stored = self.pending
        if stored is None or stored.position != position:
            copy.find(position, f"stream sequence {record.seq} holds an event the store does "
                      "not have at that position (or out of order)")  # fmt: skip
            return
        self.pending = self._next_stored()
        if stored.envelope is None:
            copy.find(position, "the stored event cannot be read")
        elif stored.envelope != payload:
            copy.find(position, _difference(stored.envelope, payload, record.seq))
        else:
            self.matched += 1
            # The message is the stored envelope, field for field: the fact read from the
            # store is the one the message holds, so it is not decoded a second time.
            self._apply(stored.fact, position, identical=True)
            return
        self._build(payload, position)

    def _beyond(self, record: StreamRecord, position: int, event_id: str) -> None:
        self.beyond += 1
        if event_id in self.seen:
            self.checks["stream-copy"].find(position, "published twice")
            return
        self.seen.add(event_id)
        self.checks["stream-head"].find(
            position, f"stream sequence {record.seq} holds position {position}, beyond the "
            f"store's head {self.head}: the store lost events it had published",
        )  # fmt: skip

    def _build(self, payload: dict[str, Any], position: int) -> None:
        try:
            envelope = envelope_from_body(payload, position)
        except Exception as exc:  # noqa: BLE001 - an unreadable message is a finding
            self.checks["stream-projections"].find(
                position, f"the stream's event cannot be read ({type(exc).__name__})"
            )
            return
        self._apply(envelope, position)

    def _apply(self, envelope: Envelope | None, position: int, *, identical: bool = False) -> None:
        if not (identical and self.exact and position == self.built_to + 1):
            models = self._models()
            if envelope is not None:
                for model in models.values():
                    model.apply(envelope)
        self.built_to = position

    def finish(self) -> list[Check]:
        """The three checks (see `settle`)."""
        return settle(self.result(), self.store, self.db, self.replayed)

    def result(self) -> WitnessResult:
        """What the stream showed, the models built from it not yet compared with the
        store's projections."""
        copy = self.checks["stream-copy"]
        lag = 0  # the newest stored events after the stream's last one: not published yet
        while self.pending is not None:
            lag += 1
            self.pending = self._next_stored()
        built = None  # an exact copy up to the head: the store's own replay
        if not (self.exact and self.built_to == self.head):
            built = {name: model.state_rows() for name, model in self._models().items()}
        copy.summary = (f"{self.matched} stored events in the stream once each, in store "
                        f"order, envelopes identical")  # fmt: skip
        if lag:
            copy.summary = (f"{self.matched} published once each, in store order, envelopes "
                            f"identical; {lag} newest not yet published (relay lag)")  # fmt: skip
        self.checks["stream-head"].summary = (
            f"{self.messages} stream messages, none beyond the store's head {self.head}"
        )
        self.checks["stream-projections"].summary = (
            f"{len(MODEL_CLASSES)} projections built from the stream equal the store's at "
            f"position {self.built_to}"
        )
        return WitnessResult(list(self.checks.values()), self.built_to, built)


@dataclass
class WitnessResult:
    """The stream's checks before `stream-projections` is settled: the state of the
    models built from the stream as of `built_to`, or None when the stream is the
    store's exact copy up to its head (the models are then the store's own replay)."""

    checks: list[Check]
    built_to: int
    built: dict[str, Rows] | None


def settle(result: WitnessResult, store: LedgerStore, db: ProjectionDB,
           replayed: dict[str, Model] | None) -> list[Check]:  # fmt: skip
    """The three checks: the models built from the stream compared with the store's
    projections as of the stream's end (relay lag allowed). `replayed`: the store's
    replay to its head (`VerifyReport.replayed`; None: replayed here if needed); the
    projections must be caught up to the head."""
    built = result.built
    if built is None:
        models = replayed if replayed is not None else _replay(store, result.built_to)
        built = {name: model.state_rows() for name, model in models.items()}
    check = next(c for c in result.checks if c.name == "stream-projections")
    reader = PointInTime(store, db)
    for name, rows in built.items():
        try:
            stored = reader.model(name, result.built_to)
        except Exception as exc:  # noqa: BLE001 - unreadable projections are a finding
            check.find(None, f"the store's {name} cannot be read ({type(exc).__name__})")
            continue
        if stored.state_rows() != rows:
            check.find(None, f"{name} built from the stream differs from the store's")
    return result.checks


def _replay(store: LedgerStore, position: int) -> dict[str, Model]:
    """The read models of the stored facts 1..position (only their state is kept)."""
    models = {name: cls() for name, cls in MODEL_CLASSES.items()}
    for count, envelope in enumerate(store.envelopes(1, position) if position else (), 1):
        for model in models.values():
            model.apply(envelope)
        if count % 1000 == 0:
            for model in models.values():
                model.take_rows()  # the rows are not compared: memory stays flat
    for model in models.values():
        model.take_rows()
    return models


async def verify_against_stream(
    settings: Settings, store: LedgerStore, db: ProjectionDB, head: int,
    replayed: dict[str, Model] | None = None,
) -> list[Check]:  # fmt: skip
    """Read the whole stream once as the store's witness; the three checks. `replayed`:
    the read models of a replay of the store's facts 1..head (`VerifyReport.replayed`).

    NatsUnavailableError when the stream cannot be read.
    """
    return settle(await witness_stream(settings, store, db, head), store, db, replayed)


async def witness_stream(settings: Settings, store: LedgerStore, db: ProjectionDB, head: int,
                         alive: Callable[[], None] | None = None) -> WitnessResult:  # fmt: skip
    """Read the whole stream once beside the store's facts 1..head (`alive`, if given,
    is called before each batch); its checks to `settle`."""
    witness = StreamWitness(store, db, head)

    def feed(records: list[StreamRecord]) -> None:
        if alive is not None:
            alive()
        witness.feed(records)

    await walk_stream(settings, feed)
    return witness.result()


@dataclass(frozen=True)
class _Stored:
    position: int
    envelope: dict[str, Any] | None  # None: the stored event cannot be read
    fact: Envelope | None = None


def _stored(store: LedgerStore, head: int) -> Iterator[_Stored]:
    for notification in store.notifications(1, head):
        try:
            fact = store.decode(notification)
        except Exception:  # noqa: BLE001 - reported as a finding at its position
            yield _Stored(notification.id, None)
            continue
        yield _Stored(notification.id, fact.to_dict(), fact)


def _payload(data: bytes) -> dict[str, Any]:
    try:
        value = decode_json(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _difference(stored: dict[str, Any], published: dict[str, Any], seq: int) -> str:
    fields = sorted(k for k in set(stored) | set(published) if stored.get(k) != published.get(k))
    what = "hash differs" if "hash" in fields else "envelope differs"
    return f"stream sequence {seq}: {what} from the stored event ({', '.join(fields)})"

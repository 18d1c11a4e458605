"""The ledger application: use cases that record commands as facts.

Each command is decided against the current decision state, turned into hash-chained
bodies and appended with an optimistic-concurrency check. A conflict means another
writer recorded first: the state is refreshed and the command decided again, so it
is recorded only if it is still valid. A command id is recorded once; a repeat
answers with what the first recording stored (see `idempotency`).

The cached decision state is never changed: a plan decides on a copy of its ledger,
and becomes the new cached state only once its facts are stored.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import islice
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from homeledger.adapters.envelope import Envelope, envelope_from_body, new_fact
from homeledger.adapters.idempotency import Fingerprints, Receipt
from homeledger.adapters.seals import digest_of, sign
from homeledger.adapters.store import (
    CommandIdTakenError,
    DecisionState,
    LedgerStore,
    VersionConflictError,
    WriteSession,
    allocations_before,
)
from homeledger.domain.commands import Command, ReversalTarget, ReverseFact, SealLedger
from homeledger.domain.errors import ConcurrencyError, DomainError, ReversalTargetError
from homeledger.domain.events import DomainEvent
from homeledger.domain.ledger import dates_of
from homeledger.domain.values import new_uuid

MAX_ATTEMPTS = 50
STREAM_CHUNK = 1000  # commands decided and inserted per step of a streamed recording
Clock = Callable[[], datetime]
RepeatLookup = Callable[[Command], "Repeated | None"]
Numbered = tuple[int, Command]  # a command and its number (an import file's line)
OnDecided = Callable[[list[Envelope]], None]
Body = dict[str, object]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _unsigned() -> Ed25519PrivateKey | None:
    return None


class BatchError(Exception):
    """A command of a batch failed: nothing of the batch was recorded. `index` is the
    command's index in the batch (for `record_all`: the number it came with)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


@dataclass(frozen=True)
class Decided:
    """A command decided anew: the facts it records and their stored bodies."""

    command_id: str
    fingerprint: str  # computed once: it is a JSON dump and a hash per command
    facts: list[DomainEvent]  # one per body, already validated: never validated again
    bodies: list[dict[str, object]]
    encoded: list[bytes]  # each body's canonical JSON, made with its hash

    def receipt(self) -> Receipt:
        versions = [int(str(body["aggregate_version"])) for body in self.bodies]
        return Receipt(self.command_id, self.fingerprint, versions[0], versions[-1])


@dataclass(frozen=True)
class Repeated:
    """A command recorded before under its command id: answered as then (`envelopes`,
    when they were read back), at ledger versions first..last."""

    envelopes: list[Envelope]
    first_version: int = 0
    last_version: int = 0


@dataclass
class Recorded:
    """What a streamed recording did: counts, and where its facts went.

    `segments` say, in command order, where each command's facts are: ("new", first
    position, last position) for facts recorded now, ("repeat", first version, last
    version) for commands recorded before; consecutive ones are merged.
    """

    commands: int = 0
    repeats: int = 0
    events: int = 0
    segments: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def positions(self) -> tuple[int, int] | None:
        new = [(first, last) for kind, first, last in self.segments if kind == "new"]
        return (new[0][0], new[-1][1]) if new else None

    def add(self, kind: str, first: int, last: int) -> None:
        if self.segments and self.segments[-1][0] == kind and self.segments[-1][2] + 1 == first:
            self.segments[-1] = (kind, self.segments[-1][1], last)
        else:
            self.segments.append((kind, first, last))


@dataclass
class Plan:
    """What a batch of commands records, decided in order on a copy of the state."""

    base: DecisionState
    slots: list[Decided | Repeated] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # command id -> fingerprint

    def __post_init__(self) -> None:
        self.ledger = self.base.ledger.copy()
        self.version, self.last_hash = self.base.version, self.base.last_hash

    @property
    def decided(self) -> list[Decided]:
        return [slot for slot in self.slots if isinstance(slot, Decided)]

    def bodies(self) -> list[dict[str, object]]:
        return [body for slot in self.decided for body in slot.bodies]

    def encoded(self) -> list[bytes]:
        return [data for slot in self.decided for data in slot.encoded]

    def after(self) -> DecisionState:
        """The decision state once the plan's facts are stored."""
        return DecisionState(self.ledger, self.version, self.last_hash)

    def take(self) -> list[Decided | Repeated]:
        """The slots planned so far, handed over; the plan goes on from its state."""
        slots, self.slots = self.slots, []
        return slots

    def answers(self, positions: Sequence[int]) -> list[Envelope]:
        """Every command's envelopes in command order, repeats where they stood."""
        remaining = iter(positions)
        answers: list[Envelope] = []
        for slot in self.slots:
            if isinstance(slot, Repeated):
                answers += slot.envelopes
                continue
            answers += [envelope_from_body(body, next(remaining), fact)
                        for body, fact in zip(slot.bodies, slot.facts, strict=True)]  # fmt: skip
        return answers


class LedgerApplication:
    def __init__(
        self, store: LedgerStore, *, actor: str, clock: Clock = utc_now,
        snapshot_every: int = 500, seal_key: Callable[[], Ed25519PrivateKey | None] = _unsigned,
        fingerprints: Fingerprints | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.actor = actor
        self.clock = clock
        self.snapshot_every = snapshot_every
        self.seal_key = seal_key  # loaded when a seal is recorded, not before
        self.fingerprints = fingerprints or Fingerprints()
        self._state: DecisionState | None = None

    # Use cases.

    def execute(self, command: Command, *, correlation_id: str | None = None,
                dry_run: bool = False) -> list[Envelope]:  # fmt: skip
        """Record one command; the envelopes it recorded (or recorded the first time)."""
        try:
            return self.execute_batch([command], correlation_id=correlation_id, dry_run=dry_run)
        except BatchError as failure:
            raise failure.error from None

    def execute_batch(
        self, commands: Sequence[Command], *, correlation_id: str | None = None,
        dry_run: bool = False,
    ) -> list[Envelope]:  # fmt: skip
        """Record commands all or nothing, in one transaction.

        Commands already recorded under their command id are answered from the store
        and not recorded again. Raises BatchError naming the first failing command.
        With `dry_run` the commands are decided against the current ledger exactly as
        they would be, and nothing is written: the envelopes are what would be recorded
        (at the positions that follow the head now).
        """
        look_up_first = len(commands) > 1  # a batch is often a file run again
        for _ in range(MAX_ATTEMPTS):
            state = self.state()
            try:
                plan = self._plan(state, commands, correlation_id or None, look_up_first)
            except BatchError:
                if self._refresh(state):
                    continue  # the refusal was decided on stale state: decide again
                raise
            if not plan.decided:
                return plan.answers([])
            if dry_run:
                after = self.store.max_position()
                return plan.answers(range(after + 1, after + 1 + len(plan.bodies())))
            try:
                positions = self.store.append(
                    plan.bodies(), [slot.receipt() for slot in plan.decided],
                    plan.ledger.allocations.changed, plan.version, plan.encoded(),
                )
            except VersionConflictError:
                self._state = None  # another writer was first: decide again on fresh state
                continue
            except CommandIdTakenError:
                self._state = None  # a racing repeat was first: answer as it recorded
                look_up_first = True
                continue
            self._recorded(state, plan.after())
            return plan.answers(positions)
        raise ConcurrencyError(
            f"the ledger kept changing under {MAX_ATTEMPTS} attempts; nothing was recorded"
        )

    def seal(self) -> list[Envelope]:
        """Record a LedgerSealed fact over everything stored up to now."""
        key = self.seal_key()
        position = self.store.max_position()
        bodies = (self.store.decode_body(n) for n in self.store.notifications(1, position))
        digest = digest_of(position, bodies)
        signed = sign(key, digest) if key is not None else {}
        return self.execute(SealLedger(position=position, digest=digest, **signed))

    def state(self) -> DecisionState:
        """The cached decision state, loaded from the store when there is none."""
        if self._state is None:
            self._state = self.store.load_state()
        return self._state

    def refreshed_state(self) -> DecisionState:
        """The decision state with every fact recorded so far."""
        self._state = None
        return self.state()

    # Planning: every command decided in order, on the plan's copy of the ledger.

    def record_all(
        self, commands: Iterable[Numbered], *, dry_run: bool = False,
        correlation_id: str | None = None, on_decided: OnDecided | None = None,
        chunk: int = STREAM_CHUNK,
    ) -> Recorded:  # fmt: skip
        """Record a stream of numbered commands all or nothing, in one write transaction,
        holding the store's write lock from the start (so nothing can conflict), deciding
        and inserting `chunk` commands at a time: memory does not grow with the number of
        commands. Commands recorded before under their command id (also earlier in this
        stream) are counted as repeats. Raises BatchError(number, error) naming the first
        failing command. With `dry_run` everything is decided and inserted as it would be,
        and rolled back; `on_decided` sees each chunk's envelopes as they are decided.
        """
        result, state = Recorded(), self.state()  # loaded before the session: SQLite
        # lets no other reader in while it is open
        with _bulk_collection(), self.store.writing(commit=not dry_run) as session:
            before = self._caught_up(session, state)
            plan, now = Plan(before), self.clock()
            for batch in _batches(commands, chunk):
                self._record_batch(session, plan, batch, now, correlation_id, result, on_decided)
            after = plan.after()
        if not dry_run and after.version != before.version:
            self._recorded(before, after)
        return result

    def _record_batch(self, session: WriteSession, plan: Plan, batch: list[Numbered],
                      now: datetime, correlation: str | None, result: Recorded,
                      on_decided: OnDecided | None) -> None:  # fmt: skip
        plan.seen = {}  # earlier chunks' command ids are found among the receipts stored
        known = session.receipts([c.command_id for _, c in batch if c.command_id])
        plan.ledger.allocations.know(
            session.allocations([i for _, c in batch for i in c.allocation_ids()])
        )
        repeats = _known_repeats(known, self.fingerprints)
        for number, command in batch:
            if isinstance(command, ReverseFact):  # the fact it names may be decided just now:
                self._flush(session, plan, result, on_decided)  # store it first
            try:
                self._add(plan, command, now, correlation, repeats)
            except DomainError as error:
                raise BatchError(number, error) from None
        self._flush(session, plan, result, on_decided)

    def _flush(self, session: WriteSession, plan: Plan, result: Recorded,
               on_decided: OnDecided | None) -> None:
        """Store what the plan decided since the last flush; count it in `result`."""
        slots = plan.take()
        if not slots:
            return
        decided = [slot for slot in slots if isinstance(slot, Decided)]
        positions = session.append([b for s in decided for b in s.bodies],
                                   [s.receipt() for s in decided],
                                   [e for s in decided for e in s.encoded])  # fmt: skip
        # Kept in the store now, where the ledger looks them up (in this session).
        session.save_allocations(plan.ledger.allocations.changed, plan.version)
        plan.ledger.allocations = plan.ledger.allocations.kept()
        remaining = iter(positions)
        for slot in slots:
            result.commands += 1
            if isinstance(slot, Repeated):
                result.repeats += 1
                if slot.first_version:  # not a repeat of a command of this very import
                    result.add("repeat", slot.first_version, slot.last_version)
                continue
            where = [next(remaining) for _ in slot.bodies]
            result.events += len(where)
            if where:
                result.add("new", where[0], where[-1])
        if on_decided is not None:
            on_decided(_envelopes(decided, positions))

    def _caught_up(self, session: WriteSession, state: DecisionState) -> DecisionState:
        """`state` with the facts other writers stored since (read in the session), applied
        on their allocations as they stood before them (the table already has them)."""
        version, last_hash = state.version, state.last_hash
        since: list[dict[str, object]] = []
        while bodies := session.facts_after(version, 1000):
            since += bodies
            version, last_hash = int(str(bodies[-1]["aggregate_version"])), str(bodies[-1]["hash"])
        if not since:
            return state
        ledger = state.ledger.copy()
        touches = [(str(b["type"]), cast(dict[str, Any], b["data"])) for b in since]
        ledger.allocations.know(allocations_before(touches, session.allocations))
        for body in since:
            ledger.apply(envelope_from_body(body, 0).fact)
        return DecisionState(ledger, version, last_hash)

    def _plan(self, state: DecisionState, commands: Sequence[Command], correlation: str | None,
              look_up_first: bool) -> Plan:  # fmt: skip
        plan = Plan(state)
        now = self.clock()
        repeat = self._repeat if look_up_first else _no_repeat
        for index, command in enumerate(commands):
            try:
                self._add(plan, command, now, correlation, repeat, fallback=self._repeat)
            except DomainError as error:
                raise BatchError(index, error) from None
        return plan

    def _add(self, plan: Plan, command: Command, now: datetime, correlation: str | None,
             repeat: RepeatLookup, fallback: RepeatLookup | None = None) -> None:  # fmt: skip
        """Plan one command: decided anew, or answered as a repeat (looked up first with
        `repeat`, or with `fallback` when the ledger refuses it)."""
        command_id = command.command_id
        if command_id and command_id in plan.seen:
            self.fingerprints.check_same(command, plan.seen[command_id])
            plan.slots.append(Repeated([]))  # the same command twice in a batch: once
            return
        found = repeat(command)
        today = now.astimezone(UTC).date()
        if found is None:
            try:
                facts = plan.ledger.decide(self._resolved(command), today)
            except DomainError:
                found = fallback(command) if fallback else None  # refused now, recorded before?
                if found is None:
                    raise
        if found is not None:
            plan.seen[str(command_id)] = self.fingerprints.of(command)
            plan.slots.append(found)
            return
        command_id = command_id or new_uuid()
        fingerprint = plan.seen[command_id] = self.fingerprints.of(command)
        made = [self._body(plan, fact, now, command_id, correlation,
                           dates_of(command, fact, today).effective_date)
                for fact in facts]  # fmt: skip
        plan.slots.append(Decided(command_id, fingerprint, list(facts),
                                  [body for body, _ in made], [data for _, data in made]))

    def _body(self, plan: Plan, fact: DomainEvent, now: datetime, command_id: str,
              correlation: str | None, effective_date: date) -> tuple[Body, bytes]:  # fmt: skip
        plan.version += 1
        body, encoded = new_fact(
            fact, event_id=new_uuid(), version=plan.version, recorded_at=now, actor=self.actor,
            command_id=command_id, correlation_id=correlation or command_id,
            prev_hash=plan.last_hash, effective_date=effective_date,
        )  # fmt: skip
        plan.ledger.apply(fact)
        plan.last_hash = str(body["hash"])
        return body, encoded

    # Reversals: the fact named is looked up in the store, never taken from the command.

    def _resolved(self, command: Command) -> Command:
        """A reversal with the stored fact it names as its target; other commands as is."""
        if not isinstance(command, ReverseFact):
            return command
        if command.position is not None:
            found = self.store.fact_at(command.position)
            missing = f"at position {command.position}"
        else:
            found = self.store.find_event(str(command.event_id))
            missing = f"with event id {command.event_id}"
        if found is None:
            raise ReversalTargetError(f"no fact is recorded {missing}")
        target = ReversalTarget(event_id=found.event_id, type=found.type,
                                position=found.position, fact=found.fact)  # fmt: skip
        return command.model_copy(update={"target": target})

    def _repeat(self, command: Command) -> Repeated | None:
        if not command.command_id:
            return None
        receipt = self.store.receipt(command.command_id)
        if receipt is None:
            return None
        self.fingerprints.check_same(command, receipt.fingerprint)
        return Repeated(self.store.envelopes_for(receipt), receipt.first_version,
                        receipt.last_version)  # fmt: skip

    # The cached state.

    def _refresh(self, state: DecisionState) -> bool:
        """Bring the cache up to date; True if other writers had recorded since `state`."""
        self._state = self.store.load_state(after=state)
        return self._state.version != state.version

    def _recorded(self, before: DecisionState, after: DecisionState) -> None:
        # The allocations the facts changed are kept in the store: the cache looks them up.
        after.ledger.allocations = after.ledger.allocations.kept()
        self._state = after
        every = self.snapshot_every
        if every and after.version // every > before.version // every:
            self.store.save_snapshot(after)


@contextlib.contextmanager
def _bulk_collection() -> Iterator[None]:
    """The cyclic garbage collector, made to run rarely while a stream is recorded.

    A recording makes millions of short-lived objects and keeps few (each chunk's are
    freed by reference counting), yet the collector's default thresholds run it every
    700 allocations over everything the process has loaded: 15-18 % of an import. The
    objects that exist before the recording are frozen out of its scans, and its first
    threshold raised; both are restored afterwards."""
    thresholds, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen_before:  # a caller that froze objects itself keeps them frozen
            gc.unfreeze()


def _no_repeat(command: Command) -> Repeated | None:
    return None


def _known_repeats(known: dict[str, Receipt], fingerprints: Fingerprints) -> RepeatLookup:
    """A repeat lookup in receipts read beforehand (the envelopes are not read back)."""

    def lookup(command: Command) -> Repeated | None:
        receipt = known.get(command.command_id or "")
        if receipt is None:
            return None
        fingerprints.check_same(command, receipt.fingerprint)
        return Repeated([], receipt.first_version, receipt.last_version)

    return lookup


def _batches(items: Iterable[Numbered], size: int) -> Iterator[list[Numbered]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _envelopes(decided: list[Decided], positions: Sequence[int]) -> list[Envelope]:
    bodies = [(body, fact) for slot in decided for body, fact in zip(slot.bodies, slot.facts,
                                                                      strict=True)]  # fmt: skip
    return [envelope_from_body(body, position, fact)
            for (body, fact), position in zip(bodies, positions, strict=True)]  # fmt: skip

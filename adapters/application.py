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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

from homeledger.adapters.envelope import Envelope, envelope_from_body, new_body
from homeledger.adapters.idempotency import Receipt, check_same
from homeledger.adapters.seals import digest_of
from homeledger.adapters.store import (
    CommandIdTakenError,
    DecisionState,
    LedgerStore,
    VersionConflictError,
)
from homeledger.domain.commands import Command, SealLedger
from homeledger.domain.errors import ConcurrencyError, DomainError
from homeledger.domain.events import DomainEvent

MAX_ATTEMPTS = 50
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class BatchError(Exception):
    """A command of a batch failed: nothing of the batch was recorded."""

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

    def receipt(self) -> Receipt:
        versions = [int(str(body["aggregate_version"])) for body in self.bodies]
        return Receipt(self.command_id, self.fingerprint, versions[0], versions[-1])


@dataclass(frozen=True)
class Repeated:
    """A command recorded before under its command id: answered as then."""

    envelopes: list[Envelope]


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

    def after(self) -> DecisionState:
        """The decision state once the plan's facts are stored."""
        return DecisionState(self.ledger, self.version, self.last_hash)

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
        snapshot_every: int = 500,
    ) -> None:  # fmt: skip
        self.store = store
        self.actor = actor
        self.clock = clock
        self.snapshot_every = snapshot_every
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
                    plan.bodies(), [slot.receipt() for slot in plan.decided]
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
        position = self.store.max_position()
        bodies = (self.store.decode_body(n) for n in self.store.notifications(1, position))
        return self.execute(SealLedger(position=position, digest=digest_of(position, bodies)))

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

    def _plan(self, state: DecisionState, commands: Sequence[Command], correlation: str | None,
              look_up_first: bool) -> Plan:  # fmt: skip
        plan = Plan(state)
        now = self.clock()
        for index, command in enumerate(commands):
            try:
                self._add(plan, command, now, correlation, look_up_first)
            except DomainError as error:
                raise BatchError(index, error) from None
        return plan

    def _add(self, plan: Plan, command: Command, now: datetime, correlation: str | None,
             look_up_first: bool) -> None:  # fmt: skip
        command_id = command.command_id
        if command_id and command_id in plan.seen:
            check_same(command, plan.seen[command_id])
            return  # the same command twice in one batch is recorded once
        repeat = self._repeat(command) if look_up_first else None
        if repeat is None:
            try:
                facts = plan.ledger.decide(command)
            except DomainError:
                repeat = self._repeat(command)  # refused now, perhaps recorded before
                if repeat is None:
                    raise
        if repeat is not None:
            plan.seen[str(command_id)] = command.fingerprint()
            plan.slots.append(repeat)
            return
        command_id = command_id or str(uuid4())
        fingerprint = plan.seen[command_id] = command.fingerprint()
        bodies = [self._body(plan, fact, now, command_id, correlation) for fact in facts]
        plan.slots.append(Decided(command_id, fingerprint, list(facts), bodies))

    def _body(self, plan: Plan, fact: DomainEvent, now: datetime, command_id: str,
              correlation: str | None) -> dict[str, object]:  # fmt: skip
        plan.version += 1
        body = new_body(
            fact, event_id=uuid4(), version=plan.version, recorded_at=now, actor=self.actor,
            command_id=command_id, correlation_id=correlation or command_id,
            prev_hash=plan.last_hash,
        )  # fmt: skip
        plan.ledger.apply(fact)
        plan.last_hash = str(body["hash"])
        return body

    def _repeat(self, command: Command) -> Repeated | None:
        if not command.command_id:
            return None
        receipt = self.store.receipt(command.command_id)
        if receipt is None:
            return None
        check_same(command, receipt.fingerprint)
        return Repeated(self.store.envelopes_for(receipt))

    # The cached state.

    def _refresh(self, state: DecisionState) -> bool:
        """Bring the cache up to date; True if other writers had recorded since `state`."""
        self._state = self.store.load_state(after=state)
        return self._state.version != state.version

    def _recorded(self, before: DecisionState, after: DecisionState) -> None:
        self._state = after
        every = self.snapshot_every
        if every and after.version // every > before.version // every:
            self.store.save_snapshot(after)

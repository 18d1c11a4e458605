"""The ledger application: use cases that record commands as facts.

Each command is decided against the current ledger state, turned into hash-chained
envelopes and appended with an optimistic-concurrency check. A conflict means
another writer recorded first: the state is refreshed and the command decided again,
so it is recorded only if it is still valid. A command id is recorded once; a repeat
answers with what the first recording stored.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from homeledger.adapters.chain import digest_up_to
from homeledger.adapters.envelope import Envelope, envelope_from_body, new_body
from homeledger.adapters.recorders import Receipt
from homeledger.adapters.store import (
    CommandIdTakenError,
    Head,
    LedgerStore,
    VersionConflictError,
)
from homeledger.domain.commands import Command, SealLedger
from homeledger.domain.errors import CommandIdReusedError, ConcurrencyError, DomainError
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
class _Planned:
    command: Command
    command_id: str
    bodies: list[dict[str, object]]
    fingerprint: str  # computed once: it is a JSON dump and a hash per command
    facts: list[DomainEvent]  # the decided facts, one per body: never re-validated


class LedgerApplication:
    def __init__(
        self, store: LedgerStore, *, actor: str, clock: Clock = utc_now,
        snapshot_every: int = 500,
    ) -> None:  # fmt: skip
        self.store = store
        self.actor = actor
        self.clock = clock
        self.snapshot_every = snapshot_every
        self._head: Head | None = None

    # Use cases.

    def execute(self, command: Command, *, correlation_id: str | None = None) -> list[Envelope]:
        """Record one command; the envelopes it recorded (or recorded the first time)."""
        try:
            return self.execute_batch([command], correlation_id=correlation_id)
        except BatchError as failure:
            raise failure.error from None

    def execute_batch(
        self, commands: Sequence[Command], *, correlation_id: str | None = None
    ) -> list[Envelope]:
        """Record commands all or nothing, in one transaction.

        Commands already recorded under their command id are answered from the store
        and not recorded again. Raises BatchError naming the first failing command.
        """
        correlation = correlation_id or None
        precheck = len(commands) > 1
        for _ in range(MAX_ATTEMPTS):
            head = self._current_head()
            try:
                slots = self._plan(head, commands, correlation, precheck)
            except BatchError:
                if self._caught_up(head):
                    continue  # the refusal was decided on stale state: decide again
                raise
            planned = [slot for slot in slots if isinstance(slot, _Planned)]
            if not planned:
                return [e for slot in slots if isinstance(slot, list) for e in slot]
            try:
                positions = self.store.append(
                    [b for p in planned for b in p.bodies], self._receipts(planned)
                )
            except VersionConflictError:
                self._head = None  # another writer was first: decide again on fresh state
                continue
            except CommandIdTakenError:
                self._head = None  # a racing repeat was first: answer as it recorded
                precheck = True
                continue
            except BaseException:
                self._head = None
                raise
            recorded = [b for p in planned for b in p.bodies]
            self._after_append(head, recorded)
            return self._answers(slots, positions)
        raise ConcurrencyError(
            f"the ledger kept changing under {MAX_ATTEMPTS} attempts; nothing was recorded"
        )

    def seal(self) -> list[Envelope]:
        """Record a LedgerSealed fact over everything stored up to now."""
        position = self.store.max_position()
        digest = digest_up_to(self.store, position)
        return self.execute(SealLedger(position=position, digest=digest))

    def head(self) -> Head:
        """The current ledger state (refreshed from the store)."""
        self._head = None
        return self._current_head()

    # Internals.

    def _current_head(self) -> Head:
        if self._head is None:
            self._head = self.store.load_head()
        return self._head

    def _caught_up(self, head: Head) -> bool:
        """Bring a cached state up to date; True if other writers had recorded since."""
        version = head.version
        self.store.fast_forward(head)
        return head.version != version

    @staticmethod
    def _answers(slots: list[_Planned | list[Envelope]], positions: list[int]) -> list[Envelope]:
        """Every command's envelopes in command order, repeats where they stood."""
        remaining = iter(positions)
        answers: list[Envelope] = []
        for slot in slots:
            if isinstance(slot, _Planned):
                answers += [
                    envelope_from_body(body, next(remaining), fact)
                    for body, fact in zip(slot.bodies, slot.facts, strict=True)
                ]
            else:
                answers += slot
        return answers

    def _plan(
        self, head: Head, commands: Sequence[Command], correlation: str | None, precheck: bool
    ) -> list[_Planned | list[Envelope]]:
        """Decide every command in order on the cached state, or raise BatchError.

        Each command gets a slot: the facts it will record, or the envelopes a repeat
        answers with. A batch is decided on a copy, so a refusal leaves the cache as it
        was; a single command's facts are applied to the cache as they are decided, and
        the cache is dropped if they are not recorded.
        """
        slots: list[_Planned | list[Envelope]] = []
        seen: dict[str, str] = {}
        version, last_hash = head.version, head.last_hash
        now = self.clock()
        ledger = head.ledger if len(commands) == 1 else copy.deepcopy(head.ledger)
        for index, command in enumerate(commands):
            try:
                if command.command_id and command.command_id in seen:
                    self._check_same(command, seen[command.command_id])
                    continue  # the same command twice in one batch is recorded once
                answered = self._answer_repeat(command) if precheck else None
                if answered is None:
                    try:
                        facts = ledger.decide(command, now.date())
                    except DomainError:
                        answered = self._answer_repeat(command)
                        if answered is None:
                            raise
                if answered is not None:
                    # A repeat answers once per batch, like a new command given twice.
                    seen[str(command.command_id)] = command.fingerprint()
                    slots.append(answered)
                    continue
            except DomainError as error:
                raise BatchError(index, error) from None
            command_id = command.command_id or str(uuid4())
            fingerprint = seen[command_id] = command.fingerprint()
            bodies = []
            for fact in facts:
                version += 1
                body = new_body(
                    fact, event_id=uuid4(), version=version, recorded_at=now, actor=self.actor,
                    command_id=command_id, correlation_id=correlation or command_id,
                    prev_hash=last_hash,
                )  # fmt: skip
                ledger.apply(fact)
                last_hash = str(body["hash"])
                bodies.append(body)
            slots.append(_Planned(command, command_id, bodies, fingerprint, list(facts)))
        if ledger is not head.ledger:
            head.ledger = ledger
        head.version, head.last_hash = version, last_hash
        return slots

    def _answer_repeat(self, command: Command) -> list[Envelope] | None:
        if not command.command_id:
            return None
        receipt = self.store.receipt(command.command_id)
        if receipt is None:
            return None
        self._check_same(command, receipt.fingerprint)
        return self.store.envelopes_for(receipt)

    @staticmethod
    def _check_same(command: Command, fingerprint: str) -> None:
        if command.fingerprint() != fingerprint:
            raise CommandIdReusedError(
                f"command id {command.command_id!r} was already used for a different command"
            )

    @staticmethod
    def _receipts(planned: list[_Planned]) -> list[Receipt]:
        return [
            Receipt(
                p.command_id,
                p.fingerprint,
                int(p.bodies[0]["aggregate_version"]),  # type: ignore[call-overload]
                int(p.bodies[-1]["aggregate_version"]),  # type: ignore[call-overload]
            )
            for p in planned
            if p.bodies
        ]

    def _after_append(self, head: Head, recorded: list[dict[str, object]]) -> None:
        first = int(recorded[0]["aggregate_version"])  # type: ignore[call-overload]
        if self.snapshot_every and head.version // self.snapshot_every > (
            first - 1
        ) // self.snapshot_every:
            self.store.save_snapshot(head)

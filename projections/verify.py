"""`verify`: everything an auditor can check from the database alone, in one pass.

    hash-chain        every stored fact is intact and in place: versions run 1, 2, 3...
                      in position order, each hash covers the fact and the one before
                      it, and every row of the events table is the ledger's own
    seals             every LedgerSealed digest equals the digest recomputed from the
                      chain; with the public keys (HOMELEDGER_SEAL_PUBLIC_KEY) every
                      signature verifies and the newest seal is signed by one of them
    rules             every fact, replayed through the domain's own rules in order
                      (`Ledger.admit`, the code that decides commands, then `apply`), is
                      one a valid command could have recorded (pledges included: each
                      must be what the terms and the portfolio history give)
    receipts          every fact is covered by the receipt of its command id, and every
                      receipt by the facts it names (a deleted receipt would let a
                      retried command record twice)
    ledger-snapshots  every stored snapshot of the decision state equals the replay at
                      its version, on the chain hash it names; the allocation table the
                      ledger looks allocations up in equals the replay's
    projections       every stored read model (rows, tracking position, checkpoints)
                      equals a rebuild from the facts in scratch memory
    double-entry      every money fact posts a balanced entry: the trial balance is zero
                      after every position, in the rebuild and in the stored postings

A fact that breaks a rule is not applied to the replay: later facts are checked
against the ledger an honest history would have. The first bad position is the
chain's when the chain is broken (the stored facts themselves are not what was
recorded), else the earliest any check found.

The checks fall in independent parts: the ledger's (hash chain, seals, rules, ledger
snapshots), the receipts' and the read models' (projections, double entry). Each reads
every stored fact up to the same head; `verify` may run the ledger's in another process
(`LedgerBeside`) while it runs the other two itself, and then reports the checks of all
as one pass would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from eventsourcing.persistence import PersistenceError

from homeledger.adapters import sql
from homeledger.adapters.envelope import Envelope, envelope_from_body
from homeledger.adapters.errors import StoreUnavailableError, first_line
from homeledger.adapters.hash_chain import LEDGER_ID, canonical_json
from homeledger.adapters.idempotency import Receipt
from homeledger.adapters.ledger_snapshot import SNAPSHOT_FORMAT, ledger_to_dict
from homeledger.adapters.recorders import ALLOCATIONS_TABLE, RECEIPTS_TABLE
from homeledger.adapters.seals import SealKeys, seal_digest
from homeledger.adapters.store import (
    LedgerStore,
    StoredChain,
    allocation_ids_named,
    allocation_of_row,
)
from homeledger.domain import events as e
from homeledger.domain.errors import DomainError
from homeledger.domain.ledger import Allocations, Ledger, RecordedFacts
from homeledger.domain.money import ZERO, fmt
from homeledger.projections.db import SNAPSHOTS, ProjectionDB
from homeledger.projections.double_entry import DoubleEntryModel
from homeledger.projections.model import Model, Row
from homeledger.projections.read_models import MODEL_CLASSES, PROJECTIONS
from homeledger.projections.runner import ProjectionRunner, pages
from homeledger.projections.scratch_allocations import ScratchAllocations
from homeledger.projections.snapshots import decode_state

PAGE = 1000
CHECK_NAMES = ("hash-chain", "seals", "rules", "receipts", "ledger-snapshots", "projections",
               "double-entry")  # fmt: skip
# The parts of verify, each reading every fact: the ledger's (chain, seals, rules, ledger
# snapshots), the receipts' and the read models' (projections, double entry).
LEDGER, RECEIPTS, MODELS = "ledger", "receipts", "models"
PARTS = frozenset((LEDGER, RECEIPTS, MODELS))
LEDGER_CHECKS = frozenset(("hash-chain", "seals", "rules", "ledger-snapshots"))


@dataclass
class Check:
    name: str
    findings: list[tuple[int | None, str]] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def position(self) -> int | None:
        positions = [p for p, _ in self.findings if p is not None]
        return min(positions) if positions else None

    def find(self, position: int | None, message: str) -> None:
        self.findings.append((position, message))

    def detail(self) -> str:
        if self.ok:
            return self.summary
        position, message = min(self.findings, key=lambda f: (f[0] is None, f[0] or 0))
        more = f" (+{len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        where = f"position {position}: " if position is not None else ""
        return f"{where}{message}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "first_bad_position": self.position,
                "detail": self.detail(), "findings": len(self.findings)}  # fmt: skip


@dataclass
class VerifyReport:
    checks: list[Check]
    head: int
    # The read models as the replay of every readable stored fact built them, at `head`:
    # what a consumer of an identical stream builds (verify --against-nats reuses them).
    replayed: dict[str, Model] | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def first_bad_position(self) -> int | None:
        chain = self.checks[0]
        if chain.position is not None:
            return chain.position
        positions = [c.position for c in self.checks if c.position is not None]
        return min(positions) if positions else None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "head": self.head, "first_bad_position": self.first_bad_position,
                "checks": [check.to_dict() for check in self.checks]}  # fmt: skip


@dataclass
class _Seals:
    """What the seals showed so far."""

    count: int = 0
    signed: int = 0
    last: tuple[int, int, str | None] | None = None  # (position, covers, why not signed)


class _Receipts:
    """The receipts, walked beside the facts in version order (a merge: no receipt is
    held in memory but the current one)."""

    def __init__(self, receipts: Iterator[Receipt]) -> None:
        self.pending = receipts
        self.next: Receipt | None = next(receipts, None)
        self.current: Receipt | None = None
        self.matched = 0
        self.last_position: int | None = None

    def covering(self, version: int, check: Check) -> Receipt | None:
        while self.next is not None and self.next.first_version <= version:
            self._leave(check)
            self.current, self.next, self.matched = self.next, next(self.pending, None), 0
        return self.current

    def _leave(self, check: Check, head: int | None = None) -> None:
        """Leave the current receipt: all the facts it names must have been seen. One
        whose facts are missing at the end names facts removed after the head."""
        r = self.current
        if r is None or self.matched == r.last_version - r.first_version + 1:
            return
        missing = r.last_version - r.first_version + 1 - self.matched
        at = head + 1 if head is not None else (self.last_position or 0) + 1
        check.find(at, f"the receipt of command id {r.command_id!r} names versions "
                   f"{r.first_version}..{r.last_version}: {missing} of those facts are not "
                   "stored (removed?)")  # fmt: skip

    def finish(self, check: Check, head: int) -> None:
        self._leave(check, head)
        while self.next is not None:
            self.current, self.next, self.matched = self.next, next(self.pending, None), 0
            self._leave(check, head)


@dataclass
class _Differences:
    """How many allocation ids differ, and the smallest (never all of them in memory)."""

    count: int = 0
    first: str | None = None

    def add(self, ids: list[str]) -> None:
        if ids:
            self.count += len(ids)
            self.first = min(ids) if self.first is None else min(self.first, *ids)


class Verifier:
    def __init__(self, store: LedgerStore, db: ProjectionDB, runner: ProjectionRunner,
                 keys: SealKeys | None = None, parts: frozenset[str] = PARTS,
                 after_page: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.store, self.db, self.runner, self.keys = store, db, runner, keys
        self.ledger_part, self.models_part = LEDGER in parts, MODELS in parts
        self.receipts_part = RECEIPTS in parts
        self.after_page = after_page
        self.checks = {name: Check(name) for name in CHECK_NAMES}
        self.scratch: dict[str, Model] = {name: cls() for name, cls in MODEL_CLASSES.items()}
        # The replay through the rules; a reversal's fact is read where it is stored.
        self.ledger = Ledger(recorded=RecordedFacts(store.recorded_fact))
        self.refused = 0
        self.stored_chain = StoredChain()  # the chain as walked so far
        self.chain = self.stored_chain.walk
        self.seal_targets: list[int] = []
        self.chain_at: dict[int, tuple[int, str]] = {}
        self.seals = _Seals()
        self.receipts = _Receipts(iter(()))
        self.ledger_snapshots: dict[int, Any] = {}
        self.tracked: dict[str, int] = {}
        self.snapshots: dict[str, set[int]] = {}

    def run(self, head: int | None = None) -> VerifyReport:
        """Check the facts at positions 1..head (default: every stored fact); only the
        checks of this verifier's parts are filled in."""
        self.allocations = ScratchAllocations()
        try:
            return self._run(self.store.max_position() if head is None else head)
        finally:
            self.allocations.close()

    def _run(self, head: int) -> VerifyReport:
        if self.models_part:
            self._catch_up(head)
            with self.db.read() as tx:
                self.tracked = tx.tracking(PROJECTIONS)
                self.snapshots = {
                    name: set(tx.snapshot_positions(name))
                    for name, cls in MODEL_CLASSES.items() if cls.SNAPSHOTTED
                }  # fmt: skip
        if self.receipts_part:
            self.receipts = _Receipts(receipts_in_order(self.store))
        if self.ledger_part:
            self.ledger.allocations = Allocations(self.allocations.lookup)
            self.seal_targets = sorted(self._seal_targets(head))
            self.ledger_snapshots = dict(self.store.ledger_snapshots())
        for notifications in pages(self.store.notifications(1, head, page=PAGE), PAGE):
            self._page(notifications)
            if self.after_page is not None:
                self.after_page()
        self._finish(head)
        return VerifyReport(list(self.checks.values()), head, self.scratch)

    def _catch_up(self, head: int) -> None:
        try:
            self.runner.catch_up(stop=head)
        except Exception as exc:  # noqa: BLE001 - a fact the models cannot read is a finding
            self.checks["projections"].find(None, f"the projections cannot catch up: {exc}")

    def _seal_targets(self, head: int) -> set[int]:
        targets = set()
        for notification in self.store.notifications(1, head, ["LedgerSealed"]):
            data = _body(self.store, notification).get("data") or {}
            if isinstance(data.get("position"), int):
                targets.add(data["position"])
        return targets

    # One page of stored facts.

    def _page(self, notifications: list[Any]) -> None:
        first, last = notifications[0].id, notifications[-1].id
        bodies = [_body(self.store, notification) for notification in notifications]
        if self.ledger_part:
            named = allocation_ids_named(body.get("data") for body in bodies)
            self.ledger.allocations.know(self.allocations.many(named))
        for notification, body in zip(notifications, bodies, strict=True):
            if self.ledger_part:
                self._chain(notification, body)
            if self.receipts_part:
                self._receipt(notification.id, body)
            envelope = self._envelope(body, notification.id)
            if envelope is not None:
                self._fact(envelope)
        if self.models_part:
            self._compare_logs(first, last)
        if self.ledger_part:
            # The replay's memory stays that of one page: the allocations it changed go
            # to disk.
            self.ledger.allocations = self.allocations.keep(self.ledger.allocations)

    def _chain(self, notification: Any, body: dict[str, Any]) -> None:
        position = notification.id
        while self.seal_targets and self.seal_targets[0] < position:
            self.chain_at[self.seal_targets.pop(0)] = (self.chain.count, self.chain.prev_hash)
        found = self.stored_chain.check(notification, body)
        if found is not None:
            self.checks["hash-chain"].find(*found)

    def _receipt(self, position: int, body: dict[str, Any]) -> None:
        version, command_id = body.get("aggregate_version"), body.get("command_id")
        if not isinstance(version, int):
            return  # the hash chain reports a fact that cannot be read
        check = self.checks["receipts"]
        receipt = self.receipts.covering(version, check)
        if receipt is None or not receipt.first_version <= version <= receipt.last_version:
            check.find(position, f"no receipt covers this fact (command id {command_id!r}): "
                       "a retry of that command would record it again")  # fmt: skip
        elif receipt.command_id != command_id:
            check.find(position, f"the receipt of version {version} is of command id "
                       f"{receipt.command_id!r}, the fact's is {command_id!r}")  # fmt: skip
        else:
            self.receipts.matched += 1
            self.receipts.last_position = position

    def _envelope(self, body: dict[str, Any], position: int) -> Envelope | None:
        try:
            return envelope_from_body(body, position)
        except Exception as exc:  # noqa: BLE001 - an unreadable fact is a finding
            why = f"the fact cannot be read: {first_line(exc)}"
            for name, mine in (("projections", self.models_part), ("rules", self.ledger_part)):
                if mine:
                    self.checks[name].find(position, why)
            return None

    def _fact(self, envelope: Envelope) -> None:
        if self.ledger_part:
            fact = envelope.fact
            self._rules(envelope)
            if isinstance(fact, e.LedgerSealed):
                self._seal(envelope.position, fact)
            if envelope.aggregate_version in self.ledger_snapshots:
                self._compare_ledger_snapshot(envelope)
        if self.models_part:
            self._models(envelope)

    def _models(self, envelope: Envelope) -> None:
        for name, model in self.scratch.items():
            model.apply(envelope)
            if envelope.position in self.snapshots.get(name, ()):
                self._compare_snapshot(name, model, envelope.position)
        ledger = self.scratch[DoubleEntryModel.NAME]
        if isinstance(ledger, DoubleEntryModel) and ledger.imbalance != ZERO:
            self.checks["double-entry"].find(
                envelope.position, f"the trial balance is {fmt(ledger.imbalance)}, not zero"
            )
            ledger.imbalance = ZERO  # report each unbalanced fact once

    def _rules(self, envelope: Envelope) -> None:
        """Admit the fact as a command's would be, then apply it; a refused fact is a
        finding and is left out of the replay."""
        try:
            self.ledger.admit(envelope.fact, envelope.stamp())  # its dates too
        except DomainError as broken:
            self.refused += 1
            self.checks["rules"].find(envelope.position, f"{envelope.type} breaks "
                                      f"[{broken.rule}]: {broken.message}")  # fmt: skip
            return
        self.ledger.apply(envelope.fact)

    def _seal(self, position: int, fact: e.LedgerSealed) -> None:
        self.seals.count += 1
        check = self.checks["seals"]
        covered = self.chain_at.get(fact.position)
        if fact.position >= position or covered is None:
            check.find(position, f"seal of position {fact.position} is not of an earlier "
                       "position")  # fmt: skip
            return
        if seal_digest(fact.position, *covered) != fact.digest:
            check.find(position, f"seal digest does not match the chain up to position "
                       f"{fact.position}")  # fmt: skip
        self.seals.signed += bool(fact.signature)
        unsigned = "it is not signed" if not fact.signature else None
        if self.keys is not None and fact.signature:
            unsigned = self.keys.problem(fact.digest, fact.signature, fact.key_id)
            if unsigned is not None and fact.key_id in self.keys.keys:
                check.find(position, f"seal of position {fact.position}: {unsigned}")
        self.seals.last = (position, fact.position, unsigned)

    def _compare_ledger_snapshot(self, envelope: Envelope) -> None:
        version = envelope.aggregate_version
        if self.ledger_snapshots.pop(version) != LEDGER_ID:
            return  # reported at the end, with the rows of other aggregates
        stored = self.store.read_snapshot(version)
        if _other_format(stored):
            return  # a cache this code ignores (an earlier homeledger's): rebuilt from facts
        ledger = ledger_to_dict(self.ledger)
        expected: dict[str, Any] = {"version": version, "hash": envelope.hash, "ledger": ledger}
        why = "cannot be read" if stored is None else _differences(stored, expected)
        if why:
            self.checks["ledger-snapshots"].find(
                envelope.position, f"the stored ledger snapshot at version {version} {why}"
            )

    # Comparisons with the stored projections.

    def _compare_logs(self, first: int, last: int) -> None:
        for name, model in self.scratch.items():
            rows = model.take_rows()
            upto = min(last, self.tracked[name])
            if upto < first:
                continue
            with self.db.read() as tx:
                for table in model.TABLES:
                    if table.log:
                        stored = tx.log_rows(table, first, upto)
                        built = rows.get(table.name, [])
                        self._compare_rows(name, table.column_names, built, stored, upto)

    def _compare_rows(self, name: str, columns: tuple[str, ...], built: list[Row],
                      stored: list[Row], upto: int) -> None:  # fmt: skip
        at = columns.index("position")
        built = [row for row in built if row[at] <= upto]
        if built == stored:
            return
        bad = min(
            (row[at] for pair in _zip_longest(built, stored) if pair[0] != pair[1]
             for row in pair if row is not None),
            default=None,
        )  # fmt: skip
        self.checks["projections"].find(bad, f"stored {name} rows differ from a rebuild")

    def _compare_snapshot(self, name: str, model: Model, position: int) -> None:
        with self.db.read() as tx:
            found = tx.query(
                f"SELECT state FROM {SNAPSHOTS.name} WHERE projection = ? AND position = ?",
                (name, position),
            )
        self.snapshots[name].discard(position)
        if not found:
            self.checks["projections"].find(
                position, f"stored {name} checkpoint differs from a rebuild"
            )
            return
        rows, built = decode_state(found[0][0]), model.state_rows()
        if rows == built:  # as written (the rows of a state load back to the same state)
            return
        stored = type(model).from_state(rows, position)
        if stored.state_rows() != built:
            self.checks["projections"].find(
                position, f"stored {name} checkpoint differs from a rebuild"
            )

    def _finish(self, head: int) -> None:
        if self.ledger_part:
            self._finish_ledger(head)
        if self.receipts_part:
            self.receipts.finish(self.checks["receipts"], head)
        if self.models_part:
            self._finish_models(head)
        self._summaries(head)

    def _finish_ledger(self, head: int) -> None:
        for target in self.seal_targets:
            self.chain_at[target] = (self.chain.count, self.chain.prev_hash)
        self._finish_seals()
        self._compare_allocations()
        for version, originator in sorted(self.ledger_snapshots.items()):
            where = "of another aggregate" if originator != LEDGER_ID else "with no fact there"
            self.checks["ledger-snapshots"].find(
                None, f"a stored ledger snapshot at version {version} {where}"
            )

    def _finish_models(self, head: int) -> None:
        for name, positions in self.snapshots.items():
            for position in sorted(positions):
                self.checks["projections"].find(
                    position, f"stored {name} checkpoint at a position with no fact"
                )
        with self.db.read() as tx:
            for name, model in self.scratch.items():
                self._compare_state(tx, name, model, head)
            unbalanced = tx.query(
                "SELECT position FROM hl_proj_postings GROUP BY position "
                "HAVING SUM(debit) <> SUM(credit) ORDER BY position LIMIT 1"
            )
        if unbalanced:
            self.checks["double-entry"].find(
                int(unbalanced[0][0]), "stored postings of the fact do not balance"
            )

    def _compare_allocations(self) -> None:
        """The store's allocation table (what the ledger looks allocations up in) must be
        the replay's, when it says it is current with the last fact."""
        try:
            at = self.store.recorder.allocations_at() or 0
        except PersistenceError:  # a store written before the table existed: none to compare
            return
        if at != self.chain.count or at == 0:
            return  # behind (an earlier homeledger's store): the ledger makes it again
        differ = _Differences()
        for rows in self._stored_allocations():  # each stored one must be the replay's
            replayed = self.allocations.many([str(row[0]) for row in rows])
            differ.add([str(row[0]) for row in rows
                        if replayed[str(row[0])] != allocation_of_row(row)])  # fmt: skip
        for ids in self.allocations.ids():  # and each of the replay's must be stored
            with self.db.read() as tx:
                stored = {str(row[0]) for row in tx.query(
                    f"SELECT allocation_id FROM {ALLOCATIONS_TABLE} WHERE allocation_id "
                    f"IN ({','.join('?' * len(ids))})", ids)}  # fmt: skip
            differ.add([i for i in ids if i not in stored])
        if differ.count:
            self.checks["ledger-snapshots"].find(
                None, f"the allocation table differs from the replay for {differ.count} "
                f"allocation(s), the first {differ.first!r}",
            )  # fmt: skip

    def _stored_allocations(self) -> Iterator[list[Any]]:
        """The store's allocation table, a page at a time (never all of it in memory)."""
        after = ""
        while True:
            with self.db.read() as tx:
                rows = tx.query(
                    f"SELECT allocation_id, initiative, year, amount, released FROM "
                    f"{ALLOCATIONS_TABLE} WHERE allocation_id > ? ORDER BY allocation_id "
                    f"LIMIT {PAGE}", (after,))  # fmt: skip
            if not rows:
                return
            yield rows
            after = str(rows[-1][0])

    def _finish_seals(self) -> None:
        """With the public keys, the history must end under a seal they prove: the newest
        seal signed, by a trusted key. (An older one may be unsigned, or signed by a key
        no longer trusted: the newest covers everything before it.)"""
        if self.keys is None:
            return
        last = self.seals.last
        if last is None:
            self.checks["seals"].find(None, "no seal is recorded: a public key is given, "
                                      "but no signed seal protects the history")  # fmt: skip
        elif last[2] is not None:
            self.checks["seals"].find(last[0], f"the newest seal (of position {last[1]}) does "
                                      f"not prove the history: {last[2]}")  # fmt: skip

    def _compare_state(self, tx: Any, name: str, model: Model, head: int) -> None:
        tracked = self.tracked[name]
        check = self.checks["projections"]
        if tracked != head:
            # Behind: the first fact it lacks; ahead (newest facts removed): the first it
            # applied that the store no longer holds.
            check.find(min(tracked, head) + 1,
                       f"{name} is at position {tracked}, the store at {head}")  # fmt: skip
            return
        cls = type(model)
        stored = cls.from_state(tx.load_state(cls, tracked), tracked)
        if stored.state_rows() != model.state_rows():
            check.find(None, f"stored {name} state differs from a rebuild")
        for table in cls.TABLES:
            if table.log:
                extra = tx.query(f"SELECT MIN(position) FROM {table.name} WHERE position > ?",
                                 (head,))  # fmt: skip
                if extra and extra[0][0] is not None:
                    check.find(int(extra[0][0]), f"stored {name} rows past the last fact")

    def _summaries(self, head: int) -> None:
        c = self.checks
        count, head_hash = self.chain.count, self.chain.prev_hash
        c["hash-chain"].summary = (
            f"{count} facts, versions 1..{count}, head hash {head_hash[:16]}"
        )
        c["seals"].summary = self._seal_summary()
        c["rules"].summary = (f"{count} facts replayed through the ledger's rules, none "
                              "broken")  # fmt: skip
        c["receipts"].summary = "every fact covered by the receipt of its command"
        c["ledger-snapshots"].summary = "every stored ledger snapshot equals the replay"
        c["projections"].summary = (
            f"{len(self.scratch)} projections equal a rebuild at position {head}"
        )
        c["double-entry"].summary = f"trial balance zero at every position 1..{head}"

    def _seal_summary(self) -> str:
        seals, last = self.seals, self.seals.last
        if last is None:
            return "no seal recorded: nothing to check"
        text = (f"{seals.count} seal(s), {seals.signed} signed; the latest covers positions "
                f"1..{last[1]}")
        if self.keys is None:
            return text + (" (signatures not checked: no HOMELEDGER_SEAL_PUBLIC_KEY)"
                           if seals.signed else " (unsigned: it binds no one who can "
                           "write the database)")  # fmt: skip
        return text + ", its signature verified"


class RunningChecks(Protocol):
    def wait(self) -> list[Check]:
        """The checks of the ledger's part, once done; its failure raised here."""

    def stop(self) -> None:
        """End it now (this process failed)."""


class LedgerBeside(Protocol):
    def start(self, head: int) -> RunningChecks:
        """Run the ledger's part of verify on facts 1..head in another process."""


def verify(store: LedgerStore, db: ProjectionDB, runner: ProjectionRunner,
           keys: SealKeys | None = None, beside: LedgerBeside | None = None,
           head: int | None = None) -> VerifyReport:  # fmt: skip
    """Every check of the facts 1..head (default: all); with `beside`, the ledger's part
    in another process meanwhile."""
    head = store.max_position() if head is None else head
    if beside is None:
        return Verifier(store, db, runner, keys).run(head)
    running = beside.start(head)
    try:
        report = Verifier(store, db, runner, keys, PARTS - {LEDGER}).run(head)
    except BaseException:
        running.stop()
        raise
    ledger = {check.name: check for check in running.wait()}
    report.checks = [ledger[c.name] if c.name in LEDGER_CHECKS else c for c in report.checks]
    return report


def receipts_in_order(store: LedgerStore) -> Iterator[Receipt]:
    """Every receipt in the order of the versions it recorded, from one query streamed on
    a connection of its own: the receipts table has no index on the versions, so reading
    it in pages (one sort of the whole table per page) costs the square of its size."""
    location = store.location
    if location.in_memory:  # another connection would see another database
        yield from store.receipts()
        return
    query = (f"SELECT command_id, fingerprint, first_version, last_version "
             f"FROM {RECEIPTS_TABLE} ORDER BY first_version")  # fmt: skip
    try:
        conn = sql.connect(location, store.timeouts)
        try:
            if location.kind == "sqlite":
                cursor = conn.cursor()
                cursor.execute(query)
                while rows := cursor.fetchmany(PAGE):
                    yield from (Receipt(*row) for row in rows)
                return
            with conn.transaction(), conn.cursor(name="hl_verify_receipts") as cursor:
                cursor.itersize = PAGE
                cursor.execute(query)
                yield from (Receipt(*row) for row in cursor)
        finally:
            conn.close()
    except (sqlite3.Error, psycopg.Error) as exc:
        raise StoreUnavailableError(f"cannot read the receipts: {first_line(exc)}") from None


def _body(store: LedgerStore, notification: Any) -> dict[str, Any]:
    try:
        body = store.decode_body(notification)
    except Exception:  # noqa: BLE001 - an unreadable body is reported by the chain check
        return {}
    return body if isinstance(body, dict) else {}


def _differences(stored: dict[str, Any], expected: dict[str, Any]) -> str:
    """Which parts of a stored snapshot differ from the replay's ('' if none)."""

    def same(a: Any, b: Any) -> bool:
        return canonical_json(a) == canonical_json(b)

    differ = [k for k in expected if not same(stored.get(k), expected[k])]
    if "ledger" in differ:
        ledger = stored.get("ledger")
        found = ledger if isinstance(ledger, dict) else {}
        differ += [f"ledger.{k}" for k, v in expected["ledger"].items()
                   if not same(found.get(k), v)]  # fmt: skip
    return f"differs from the replay ({', '.join(differ)})" if differ else ""


def _other_format(stored: dict[str, Any] | None) -> bool:
    """Whether a stored ledger snapshot is of another format than this code writes."""
    inner = stored.get("ledger") if isinstance(stored, dict) else None
    return isinstance(inner, dict) and inner.get("format") != SNAPSHOT_FORMAT


def _zip_longest(a: list[Row], b: list[Row]) -> list[tuple[Row | None, Row | None]]:
    length = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(length)]

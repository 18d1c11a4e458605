"""`verify`: everything an auditor can check from the database alone, in one pass.

    hash-chain    every stored fact is intact and in place: versions run 1, 2, 3... in
                  position order and each hash covers the fact and the one before it
    seals         every LedgerSealed digest equals the digest recomputed from the chain
    projections   every stored read model (rows, tracking position, checkpoints)
                  equals a rebuild from the facts in scratch memory
    double-entry  every money fact posts a balanced entry: the trial balance is zero
                  after every position, in the rebuild and in the stored postings
    pledges       every DonationPledged equals the pledge recomputed from the terms
                  and the portfolio history up to it

The first bad position is the chain's when the chain is broken (the stored facts
themselves are not what was recorded), else the earliest any check found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from homeledger.adapters.envelope import Envelope, envelope_from_body
from homeledger.adapters.errors import first_line
from homeledger.adapters.seals import seal_digest
from homeledger.adapters.store import LedgerStore, StoredChain
from homeledger.domain import events as e
from homeledger.domain.ledger import pledged_fact
from homeledger.domain.money import ZERO, fmt
from homeledger.domain.pledge import Terms, pledge_for
from homeledger.projections.balances import BalancesModel
from homeledger.projections.db import SNAPSHOTS, ProjectionDB
from homeledger.projections.double_entry import DoubleEntryModel
from homeledger.projections.model import Model, Row
from homeledger.projections.portfolio import PortfolioModel
from homeledger.projections.read_models import MODEL_CLASSES, PROJECTIONS
from homeledger.projections.runner import ProjectionRunner, pages
from homeledger.projections.snapshots import decode_state

PAGE = 1000
CHECK_NAMES = ("hash-chain", "seals", "projections", "double-entry", "pledges")


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


class Verifier:
    def __init__(self, store: LedgerStore, db: ProjectionDB, runner: ProjectionRunner) -> None:
        self.store, self.db, self.runner = store, db, runner
        self.checks = {name: Check(name) for name in CHECK_NAMES}
        self.scratch: dict[str, Model] = {name: cls() for name, cls in MODEL_CLASSES.items()}
        self.terms: Terms | None = None
        self.stored_chain = StoredChain()  # the chain as walked so far
        self.chain = self.stored_chain.walk
        self.seal_targets: list[int] = []
        self.chain_at: dict[int, tuple[int, str]] = {}
        self.seals = 0
        self.last_seal: int | None = None
        self.pledges = 0
        self.tracked: dict[str, int] = {}
        self.snapshots: dict[str, set[int]] = {}

    def run(self) -> VerifyReport:
        head = self.store.max_position()
        self._catch_up(head)
        self.seal_targets = sorted(self._seal_targets(head))
        with self.db.read() as tx:
            self.tracked = tx.tracking(PROJECTIONS)
            self.snapshots = {
                name: set(tx.snapshot_positions(name))
                for name, cls in MODEL_CLASSES.items() if cls.SNAPSHOTTED
            }  # fmt: skip
        for notifications in pages(self.store.notifications(1, head, page=PAGE), PAGE):
            self._page(notifications)
        self._finish(head)
        return VerifyReport(list(self.checks.values()), head)

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
        for notification in notifications:
            body = _body(self.store, notification)
            self._chain(notification, body)
            envelope = self._envelope(body, notification.id)
            if envelope is not None:
                self._fact(envelope)
        self._compare_logs(first, last)

    def _chain(self, notification: Any, body: dict[str, Any]) -> None:
        position = notification.id
        while self.seal_targets and self.seal_targets[0] < position:
            self.chain_at[self.seal_targets.pop(0)] = (self.chain.count, self.chain.prev_hash)
        reason = self.stored_chain.check(notification, body)
        if reason is not None:
            self.checks["hash-chain"].find(position, reason)

    def _envelope(self, body: dict[str, Any], position: int) -> Envelope | None:
        try:
            return envelope_from_body(body, position)
        except Exception as exc:  # noqa: BLE001 - an unreadable fact is a finding
            for name in ("projections", "pledges"):
                self.checks[name].find(position, f"the fact cannot be read: {first_line(exc)}")
            return None

    def _fact(self, envelope: Envelope) -> None:
        fact = envelope.fact
        if isinstance(fact, e.PartnershipEstablished):
            self.terms = Terms(fact.donor, fact.beneficiary, fact.rate, fact.currency,
                               fact.basis, fact.start_date)  # fmt: skip
        elif isinstance(fact, e.DonationPledged):
            self._pledge(envelope.position, fact)
        elif isinstance(fact, e.LedgerSealed):
            self._seal(envelope.position, fact)
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

    def _seal(self, position: int, fact: e.LedgerSealed) -> None:
        self.seals += 1
        covered = self.chain_at.get(fact.position)
        if fact.position >= position or covered is None:
            self.checks["seals"].find(position, f"seal of position {fact.position} is not "
                                      "of an earlier position")  # fmt: skip
            return
        if seal_digest(fact.position, *covered) != fact.digest:
            self.checks["seals"].find(
                position, f"seal digest does not match the chain up to position {fact.position}"
            )
        self.last_seal = fact.position

    def _pledge(self, position: int, fact: e.DonationPledged) -> None:
        self.pledges += 1
        balances = self.scratch[BalancesModel.NAME]
        portfolio = self.scratch[PortfolioModel.NAME]
        if self.terms is None or not isinstance(balances, BalancesModel) or not isinstance(
            portfolio, PortfolioModel
        ):
            self.checks["pledges"].find(position, "pledge recorded before the partnership")
            return
        before = balances.years[fact.year].pledged if fact.year in balances.years else ZERO
        pledge = pledge_for(self.terms, portfolio.portfolio, fact.year, before)
        if fact != pledged_fact(self.terms, pledge):
            self.checks["pledges"].find(
                position, f"{fact.year} pledge recorded as {fmt(fact.amount)} on unit basis "
                f"{fact.unit_basis} (delta {fmt(fact.delta)}); the portfolio history gives "
                f"{fmt(pledge.amount)} on {pledge.unit_basis} (delta {fmt(pledge.delta)})",
            )  # fmt: skip

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
        stored = type(model).from_state(decode_state(found[0][0]), position) if found else None
        if stored is None or stored.state_rows() != model.state_rows():
            self.checks["projections"].find(
                position, f"stored {name} checkpoint differs from a rebuild"
            )

    def _finish(self, head: int) -> None:
        for target in self.seal_targets:
            self.chain_at[target] = (self.chain.count, self.chain.prev_hash)
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
        self._summaries(head)

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
        last = self.last_seal
        c["seals"].summary = (
            f"{self.seals} seal(s); the latest covers positions 1..{last}"
            if last is not None else "no seal recorded: nothing to check"
        )  # fmt: skip
        c["projections"].summary = (
            f"{len(self.scratch)} projections equal a rebuild at position {head}"
        )
        c["double-entry"].summary = f"trial balance zero at every position 1..{head}"
        c["pledges"].summary = f"{self.pledges} pledge(s) recomputed from the portfolio history"


def verify(store: LedgerStore, db: ProjectionDB, runner: ProjectionRunner) -> VerifyReport:
    return Verifier(store, db, runner).run()


def _body(store: LedgerStore, notification: Any) -> dict[str, Any]:
    try:
        body = store.decode_body(notification)
    except Exception:  # noqa: BLE001 - an unreadable body is reported by the chain check
        return {}
    return body if isinstance(body, dict) else {}


def _zip_longest(a: list[Row], b: list[Row]) -> list[tuple[Row | None, Row | None]]:
    length = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(length)]


"""Double-entry postings and the trial balance.

Chart of accounts (normal balance in brackets):

    cash                    [debit]  money received from the donor less money paid out
    receivable:<year>       [debit]  the year's pledge not yet received
    unallocated:<year>      [credit] the year's pledge not yet allocated to an initiative
    allocated:<initiative>  [credit] allocated to the initiative and not released
    disbursed               [debit]  paid out to initiatives (the grants made)

How each money fact posts (one balanced entry per fact):

    DonationPledged     delta > 0: Dr receivable:Y  Cr unallocated:Y   (|delta|)
                        delta < 0: Dr unallocated:Y Cr receivable:Y    (|delta|)
    DonationReceived    Dr cash               Cr receivable:Y
    FundsAllocated      Dr unallocated:Y      Cr allocated:I
    AllocationReleased  Dr allocated:I        Cr unallocated:Y
    FundsDisbursed      Dr disbursed          Cr cash
    FactReversed        the exact opposite of the reversed fact's entry (a receipt:
                        Dr receivable:Y Cr cash; a disbursement: Dr cash Cr disbursed)

So cash + receivables + disbursed = every pledge = unallocated + allocated, and the
sum of all balances (debits - credits) is zero after every fact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Self

from homeledger.adapters.envelope import Envelope
from homeledger.domain import events as e
from homeledger.domain.events import DomainEvent
from homeledger.domain.money import ZERO, fmt
from homeledger.projections.model import Model, Row, Rows, Table, from_cents, normalise, to_cents

POSTINGS = Table(
    "hl_proj_postings",
    (("position", "INT"), ("line", "INT"), ("account", "TEXT"), ("debit", "INT"),
     ("credit", "INT")),
    ("position", "line"),
    log=True,
)  # fmt: skip
ACCOUNTS = Table(
    "hl_proj_accounts",
    (("account", "TEXT"), ("debit", "INT"), ("credit", "INT")),
    ("account",),
)
CASH, DISBURSED = "cash", "disbursed"
TRIAL_COLUMNS = ("account", "debit", "credit", "balance")
POSTING_COLUMNS = ("position", "line", "account", "debit", "credit")
_ORDER = {"cash": 0, "receivable": 1, "unallocated": 2, "allocated": 3, "disbursed": 4}


def receivable(year: int) -> str:
    return f"receivable:{year}"


def unallocated(year: int) -> str:
    return f"unallocated:{year}"


def allocated(initiative: str) -> str:
    return f"allocated:{initiative}"


def account_order(account: str) -> tuple[int, str]:
    """Chart order: cash, receivables, unallocated funds, allocated funds, disbursed."""
    kind, _, _ = account.partition(":")
    return _ORDER.get(kind, len(_ORDER)), account


@dataclass
class Account:
    debit: Decimal = ZERO
    credit: Decimal = ZERO

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit


@dataclass(frozen=True)
class TrialBalance:
    position: int
    accounts: dict[str, Account]

    @property
    def debit(self) -> Decimal:
        return sum((a.debit for a in self.accounts.values()), ZERO)

    @property
    def credit(self) -> Decimal:
        return sum((a.credit for a in self.accounts.values()), ZERO)

    @property
    def difference(self) -> Decimal:
        return self.debit - self.credit

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"account": name, "debit": fmt(a.debit), "credit": fmt(a.credit),
             "balance": fmt(a.balance)}
            for name, a in sorted(self.accounts.items(), key=lambda kv: account_order(kv[0]))
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of_position": self.position,
            "accounts": self.rows(),
            "debit": fmt(self.debit),
            "credit": fmt(self.credit),
            "difference": fmt(self.difference),
            "balanced": self.difference == ZERO,
        }


def entry(ev: DomainEvent) -> list[tuple[str, str, Decimal]]:
    """The balanced entry a fact posts, as (debit account, credit account, amount)."""
    if isinstance(ev, e.DonationPledged):
        if ev.delta > 0:
            return [(receivable(ev.year), unallocated(ev.year), ev.delta)]
        if ev.delta < 0:
            return [(unallocated(ev.year), receivable(ev.year), -ev.delta)]
        return []
    if isinstance(ev, e.DonationReceived):
        return [(CASH, receivable(ev.year), ev.amount)]
    if isinstance(ev, e.FundsAllocated):
        return [(unallocated(ev.year), allocated(ev.initiative), ev.amount)]
    if isinstance(ev, e.AllocationReleased):
        return [(allocated(ev.initiative), unallocated(ev.year), ev.amount)]
    if isinstance(ev, e.FundsDisbursed):
        return [(DISBURSED, CASH, ev.amount)]
    if isinstance(ev, e.FactReversed):
        return [(credit, debit, amount) for debit, credit, amount in entry(ev.reversed_fact)]
    return []


MONEY_FACTS = (e.DonationPledged, e.DonationReceived, e.FundsAllocated,
               e.AllocationReleased, e.FundsDisbursed, e.FactReversed)  # fmt: skip


class DoubleEntryModel(Model):
    """Postings (a log) and account totals (keyed), snapshotted for point-in-time reads."""

    NAME = "postings"
    TABLES = (POSTINGS, ACCOUNTS)
    SNAPSHOTTED = True
    STATE_QUERIES: ClassVar[dict[str, str]] = {
        ACCOUNTS.name: f"SELECT * FROM {ACCOUNTS.name} ORDER BY account"
    }

    def __init__(self) -> None:
        super().__init__()
        self.accounts: dict[str, Account] = {}
        # Sum of debits minus credits over every posting: zero unless a fact posts
        # an unbalanced entry.
        self.imbalance = ZERO

    def _handlers(self) -> dict[str, Callable[[Envelope, Any], None]]:
        return {kind.TYPE: self._post for kind in MONEY_FACTS}

    def _post(self, env: Envelope, ev: DomainEvent) -> None:
        line = 0
        for debit, credit, amount in entry(ev):
            for account, side in ((debit, "debit"), (credit, "credit")):
                line += 1
                self._book(env.position, line, account, side, amount)

    def _book(self, position: int, line: int, account: str, side: str, amount: Decimal) -> None:
        totals = self.accounts.get(account)
        if totals is None:
            totals = self.accounts[account] = Account()
        if side == "debit":
            totals.debit += amount
            self.imbalance += amount
            cents = (to_cents(amount), 0)
        else:
            totals.credit += amount
            self.imbalance -= amount
            cents = (0, to_cents(amount))
        self._touch(ACCOUNTS.name, account)
        self._append(POSTINGS.name, (position, line, account, *cents))

    def _keyed_row(self, table: str, key: Any) -> Row:
        a = self.accounts[key]
        return (key, to_cents(a.debit), to_cents(a.credit))

    def state_rows(self) -> Rows:
        return {ACCOUNTS.name: [self._keyed_row(ACCOUNTS.name, k) for k in sorted(self.accounts)]}

    @classmethod
    def from_state(cls, rows: Rows, position: int) -> Self:
        model = cls()
        model.position = position
        for name, debit, credit in normalise(rows.get(ACCOUNTS.name, [])):
            model.accounts[name] = Account(from_cents(debit), from_cents(credit))
        model.imbalance = sum((a.balance for a in model.accounts.values()), ZERO)
        return model

    def trial_balance(self) -> TrialBalance:
        snapshot = {k: Account(a.debit, a.credit) for k, a in self.accounts.items()}
        return TrialBalance(self.position, snapshot)

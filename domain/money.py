"""Exact money: Decimal inside, two-decimal strings outside. Never float."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Larger than any plausible gift, small enough that sums stay exact in 28 digits.
MAX_AMOUNT = Decimal("999999999999999.99")
AMOUNT_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"
_PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,2})?")
_TOO_PRECISE = re.compile(r"-?[0-9]{1,18}\.[0-9]{3,}")


class AmountError(ValueError):
    """An amount that is not a positive money value with at most two decimals."""


def parse_amount(value: object, *, allow_zero: bool = False, field: str = "amount") -> Decimal:
    """Turn user or wire input into an exact cent amount, refusing anything inexact."""
    if isinstance(value, bool | float):
        raise AmountError(f"{field} must be a decimal string such as 250000.00, not {value!r}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise AmountError(f"{field} must be a finite number, not {value}")
        text = f"{value:f}"
    elif isinstance(value, int | str):
        text = str(value).strip()
    else:
        raise AmountError(f"{field} must be a decimal string, not {type(value).__name__}")
    if not _PLAIN_DECIMAL.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        if _TOO_PRECISE.fullmatch(text):
            raise AmountError(f"{field} {shown} has more than two decimals")
        raise AmountError(f"{field} {shown!r} is not a plain decimal amount such as 250000.00")
    number = Decimal(text)
    if number < 0 or (number == 0 and not allow_zero):
        raise AmountError(f"{field} must be positive, got {text}")
    if number > MAX_AMOUNT:
        raise AmountError(f"{field} {text} exceeds the maximum of {MAX_AMOUNT}")
    if number == 0:
        number = Decimal(0)  # "-0.00" is zero: never carry a signed zero onto the wire
    return number.quantize(CENT)


def round_cents(value: Decimal) -> Decimal:
    """Round half-even to the cent: the one rounding the ledger ever does."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def fmt(value: Decimal) -> str:
    """The wire form of money: a fixed two-decimal string."""
    return f"{value.quantize(CENT):f}"


def _wire_money(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value.quantize(CENT)
    return parse_amount(value, allow_zero=True)


def _wire_signed_money(value: Any) -> Decimal:
    if isinstance(value, str) and value.strip().startswith("-"):
        magnitude = parse_amount(value.strip()[1:], allow_zero=True)
        return -magnitude if magnitude else magnitude
    if isinstance(value, Decimal) and value < 0:
        return -_wire_money(-value)
    return _wire_money(value)


_MONEY_SCHEMA = {"type": "string", "pattern": AMOUNT_PATTERN}

# Money on events: Decimal in Python, a two-decimal string on every wire.
Money = Annotated[
    Decimal,
    BeforeValidator(_wire_money),
    PlainSerializer(fmt, return_type=str, when_used="json"),
    WithJsonSchema(_MONEY_SCHEMA),
]
SignedMoney = Annotated[
    Decimal,
    BeforeValidator(_wire_signed_money),
    PlainSerializer(fmt, return_type=str, when_used="json"),
    WithJsonSchema(_MONEY_SCHEMA),
]

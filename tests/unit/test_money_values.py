"""Money parsing and value validation: what the ledger accepts at its edge, and what not."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from homeledger.domain import commands as c
from homeledger.domain.events import event_from_data
from homeledger.domain.money import MAX_AMOUNT, AmountError, fmt, parse_amount, round_cents
from homeledger.domain.values import (
    CountryCode,
    CurrencyCode,
    InitiativeId,
    LedgerDate,
    Text,
    Token,
    Units,
    Year,
)
from tests.strategies import MAX_CENTS, cents_to_str

# parse_amount: refused forms.


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1.00", "must be positive"),
        ("-0.01", "must be positive"),
        ("0", "must be positive"),
        ("0.00", "must be positive"),
        ("1.234", "more than two decimals"),
        ("250000.001", "more than two decimals"),
        ("1.000", "more than two decimals"),
        ("NaN", "not a plain decimal"),
        ("nan", "not a plain decimal"),
        ("sNaN", "not a plain decimal"),
        ("Infinity", "not a plain decimal"),
        ("-Infinity", "not a plain decimal"),
        ("inf", "not a plain decimal"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (Decimal("-Infinity"), "finite"),
        (1.5, "decimal string"),
        (0.1, "decimal string"),
        (100.0, "decimal string"),
        (float("nan"), "decimal string"),
        (float("inf"), "decimal string"),
        ("1e5", "not a plain decimal"),
        ("1E+2", "not a plain decimal"),
        ("2.5e-1", "not a plain decimal"),
        ("1000000000000000.00", "exceeds the maximum"),
        ("999999999999999999", "exceeds the maximum"),
        ("9999999999999999999", "not a plain decimal"),
        (10**20, "not a plain decimal"),
        ("1" + "0" * 60, "not a plain decimal"),
        (True, "decimal string"),
        (False, "decimal string"),
        (None, "decimal string"),
        ([1], "decimal string"),
        ("", "not a plain decimal"),
        ("   ", "not a plain decimal"),
        ("1.", "not a plain decimal"),
        (".50", "not a plain decimal"),
        ("+1.00", "not a plain decimal"),
        ("1,000.00", "not a plain decimal"),
        ("1 000.00", "not a plain decimal"),
        ("0x10", "not a plain decimal"),
        ("\uff11.00", "not a plain decimal"),  # a full-width digit one
        ("12.5.0", "not a plain decimal"),
        ("EUR 5.00", "not a plain decimal"),
    ],
    ids=lambda value: repr(value)[:30],
)
def test_parse_amount_refuses(value: Any, message: str) -> None:
    with pytest.raises(AmountError, match=re.escape(message)):
        parse_amount(value)


def test_an_amount_error_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^rate must be positive"):
        parse_amount("-5.00", field="rate")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("250000.00", "250000.00"),
        ("1", "1.00"),
        ("0.5", "0.50"),
        ("0.01", "0.01"),
        (" 3.10 ", "3.10"),
        ("007.00", "7.00"),
        (7, "7.00"),
        (Decimal("12.3"), "12.30"),
        (Decimal("1E+2"), "100.00"),  # a Decimal value, not scientific text
        ("999999999999999.99", "999999999999999.99"),
    ],
    ids=repr,
)
def test_parse_amount_accepts(value: Any, expected: str) -> None:
    parsed = parse_amount(value)
    assert parsed == Decimal(expected)
    assert str(parsed) == expected  # exactly two decimals, never an exponent
    assert fmt(parsed) == expected


def test_maximum_is_accepted_and_one_cent_more_refused() -> None:
    assert parse_amount(fmt(MAX_AMOUNT)) == MAX_AMOUNT
    with pytest.raises(AmountError, match="exceeds the maximum"):
        parse_amount(fmt(MAX_AMOUNT + Decimal("0.01")))


def test_zero_is_accepted_only_when_allowed() -> None:
    assert str(parse_amount("0", allow_zero=True)) == "0.00"
    assert str(parse_amount("0.00", allow_zero=True)) == "0.00"
    with pytest.raises(AmountError, match="must be positive"):
        parse_amount("-0.01", allow_zero=True)


@given(st.integers(1, MAX_CENTS))
def test_every_two_decimal_string_in_range_parses_exactly(cents: int) -> None:
    text = cents_to_str(cents)
    parsed = parse_amount(text)
    assert parsed == Decimal(cents) / 100
    assert fmt(parsed) == text


@given(st.integers(0, MAX_CENTS), st.integers(1, 9), st.integers(1, 6))
def test_more_than_two_decimals_is_refused_never_rounded(
    cents: int, digit: int, extra: int
) -> None:
    text = cents_to_str(cents) + "0" * (extra - 1) + str(digit)
    with pytest.raises(AmountError, match="more than two decimals"):
        parse_amount(text)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_are_always_refused(value: float) -> None:
    with pytest.raises(AmountError):
        parse_amount(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.005", "0.00"),  # half: down to the even cent
        ("0.015", "0.02"),  # half: up to the even cent
        ("0.025", "0.02"),
        ("2.675", "2.68"),
        ("0.0051", "0.01"),  # more than half rounds up
        ("-0.015", "-0.02"),
    ],
)
def test_round_cents_is_half_even(value: str, expected: str) -> None:
    assert str(round_cents(Decimal(value))) == expected


# Money on facts: two-decimal strings on the wire, never floats.


def _allocated(amount: object) -> dict[str, object]:
    return {"allocation_id": "a-1", "initiative": "gw-bissau-village", "year": 2021,
            "amount": amount, "currency": "EUR"}  # fmt: skip


@pytest.mark.parametrize("amount", [250000.0, "1.005", "NaN", "1e3", True, "-5.00"], ids=repr)
def test_facts_refuse_inexact_money_on_the_wire(amount: object) -> None:
    with pytest.raises(ValidationError):
        event_from_data("FundsAllocated", 1, _allocated(amount))


def test_facts_write_money_as_two_decimal_strings() -> None:
    fact = event_from_data("FundsAllocated", 1, _allocated("250000.5"))
    assert fact.model_dump(mode="json")["amount"] == "250000.50"


@pytest.mark.parametrize("amount", ["-0.00", "-0"])
def test_facts_do_not_carry_negative_zero(amount: str) -> None:
    try:
        fact = event_from_data("FundsAllocated", 1, _allocated(amount))
    except ValidationError:
        return  # refused: fine
    assert fact.model_dump(mode="json")["amount"] == "0.00"


@pytest.mark.parametrize("units", [0, -5, True, 2.0, "7"], ids=repr)
def test_unit_facts_refuse_counts_that_are_not_positive_integers(units: object) -> None:
    with pytest.raises(ValidationError):
        event_from_data(
            "UnitsAcquired", 1, {"country": "SE", "units": units, "effective_date": "2021-07-01"}
        )


# Value types.


def _valid(annotation: Any, value: object) -> object:
    return TypeAdapter(annotation).validate_python(value)


@pytest.mark.parametrize(
    ("value", "expected"), [("SE", "SE"), ("se", "SE"), (" gw ", "GW"), ("NL", "NL")], ids=repr
)
def test_country_codes_accepted(value: str, expected: str) -> None:
    assert _valid(CountryCode, value) == expected


@pytest.mark.parametrize("value", ["XX", "SWE", "S", "", "EU", "UK", 46, None], ids=repr)
def test_country_codes_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        _valid(CountryCode, value)


@pytest.mark.parametrize(("value", "expected"), [("EUR", "EUR"), ("eur", "EUR"), ("SEK", "SEK")])
def test_currency_codes_accepted(value: str, expected: str) -> None:
    assert _valid(CurrencyCode, value) == expected


@pytest.mark.parametrize("value", ["EURO", "XYZ", "€", "", "EU"], ids=repr)
def test_currency_codes_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="ISO 4217"):
        _valid(CurrencyCode, value)


@pytest.mark.parametrize(
    "value", ["gw-bissau-village", "a", "0", "-", "a" * 64, "nl-2021-siblings"], ids=repr
)
def test_initiative_slugs_accepted(value: str) -> None:
    assert _valid(InitiativeId, value) == value


@pytest.mark.parametrize(
    "value",
    ["", "a" * 65, "GW-village", "gw_bissau", "gw.bissau", "gw bissau", "gw*", "gw>", "gw/a",
     "village\n", "b\u00e9b\u00e9"],
    ids=repr,
)  # fmt: skip
def test_initiative_slugs_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="not an initiative id"):
        _valid(InitiativeId, value)


@given(st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True))
def test_every_slug_is_one_nats_subject_token(slug: str) -> None:
    assert _valid(InitiativeId, slug) == slug
    assert not set(slug) & set(". *>\t\r\n")


@pytest.mark.parametrize("value", ["a-17", "A.b_c:d-e", "x" * 128], ids=repr)
def test_tokens_accepted(value: str) -> None:
    assert _valid(Token, value) == value


@pytest.mark.parametrize("value", ["", "-a", ".a", "a b", "x" * 129, "a/b"], ids=repr)
def test_tokens_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        _valid(Token, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-07-01", date(2021, 7, 1)),
        (" 2024-02-29 ", date(2024, 2, 29)),
        (date(2021, 7, 1), date(2021, 7, 1)),
        ("1900-01-01", date(1900, 1, 1)),
        ("2999-12-31", date(2999, 12, 31)),
    ],
    ids=repr,
)
def test_dates_accepted(value: object, expected: date) -> None:
    assert _valid(LedgerDate, value) == expected


@pytest.mark.parametrize(
    "value",
    ["2021-7-1", "2023-02-29", "2021-13-01", "20210701", "01.07.2021", "2021-07-01T00:00:00",
     datetime(2021, 7, 1, tzinfo=UTC), 20210701, "1899-12-31", "3000-01-01", ""],
    ids=repr,
)  # fmt: skip
def test_dates_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        _valid(LedgerDate, value)


@pytest.mark.parametrize(("annotation", "value"), [(Year, 2021), (Units, 1), (Units, 10**8)])
def test_counts_accepted(annotation: Any, value: int) -> None:
    assert _valid(annotation, value) == value


@pytest.mark.parametrize(
    ("annotation", "value"),
    [(Year, "2021"), (Year, 2021.0), (Year, True), (Year, 1899), (Year, 3000),
     (Units, 0), (Units, -1), (Units, 1.0), (Units, "5"), (Units, True), (Units, 10**8 + 1)],
    ids=repr,
)  # fmt: skip
def test_counts_refused(annotation: Any, value: object) -> None:
    with pytest.raises(ValidationError):
        _valid(annotation, value)


def test_text_is_stripped_and_refused_when_blank_long_or_with_control_characters() -> None:
    assert _valid(Text, "  Bissau hub  ") == "Bissau hub"
    for bad in ["", "   ", "a\x00b", "line\nbreak", "bell\x07", "x" * 501]:
        with pytest.raises(ValidationError):
            _valid(Text, bad)


# Commands validate their fields before any rule runs.


def test_commands_refuse_inexact_amounts_and_unknown_fields() -> None:
    good = {"initiative": "gw-bissau-village", "year": 2021, "amount": "250000.00"}
    assert c.AllocateFunds(**good).amount == Decimal("250000.00")
    for amount in ["250000.001", 250000.0, "NaN", "1e5", "-1.00", "0.00"]:
        with pytest.raises(ValidationError):
            c.AllocateFunds(**{**good, "amount": amount})
    with pytest.raises(ValidationError, match="extra"):
        c.AllocateFunds(**good, colour="blue")


def test_parse_command_builds_commands_from_import_lines() -> None:
    command = c.parse_command(
        {"command": "units.acquire", "country": "gw", "units": 40, "on": "2021-09-01"}
    )
    assert command == c.AcquireUnits(country="GW", units=40, on=date(2021, 9, 1))
    with pytest.raises(c.UnknownCommandError, match=r"unknown command 'units\.steal'"):
        c.parse_command({"command": "units.steal"})
    with pytest.raises(c.UnknownCommandError, match='"command" field'):
        c.parse_command({"units": 40})


def test_fingerprint_ignores_the_command_id_only() -> None:
    one = c.PledgeDonation(year=2021, command_id="x-1")
    assert one.fingerprint() == c.PledgeDonation(year=2021, command_id="x-2").fingerprint()
    assert one.fingerprint() != c.PledgeDonation(year=2022, command_id="x-1").fingerprint()
    acquire = c.AcquireUnits(country="SE", units=1, on=date(2021, 7, 1))
    dispose = c.DisposeUnits(country="SE", units=1, on=date(2021, 7, 1))
    assert acquire.fingerprint() != dispose.fingerprint()

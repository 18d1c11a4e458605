"""The pledge: homes held over time, unit-days, and the one half-even rounding.

Every expected figure below is worked out by hand in the comments, never by calling
the code under test a second time.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeledger.domain import commands as c
from homeledger.domain.errors import InsufficientUnitsError
from homeledger.domain.pledge import compute_pledge, days_in_year
from homeledger.domain.portfolio import Portfolio
from tests.helpers import build, partnership
from tests.strategies import COUNTRIES

RATE_100 = 10_000  # EUR 100.00 in cents


def portfolio(*changes: tuple[str, date, int]) -> Portfolio:
    held = Portfolio()
    for country, on, delta in changes:
        held.apply(country, on, delta)
    return held


# Year-end basis.


def test_year_end_110000_homes_at_100_is_11_million() -> None:
    homes = portfolio(("SE", date(2021, 1, 1), 110_000))
    pledge = compute_pledge(homes, "year-end", RATE_100, 2021, date(2021, 1, 1))
    # 110,000 homes x 100.00 = 11,000,000.00
    assert pledge.unit_basis == 110_000
    assert pledge.amount_cents == 1_100_000_000


def test_year_end_counts_homes_held_on_31_december_in_full() -> None:
    homes = portfolio(
        ("SE", date(2021, 7, 1), 100),
        ("DE", date(2021, 12, 31), 30),  # bought on the last day: counted in full
        ("NL", date(2021, 3, 1), 10),
        ("NL", date(2021, 12, 31), -10),  # sold on the last day: not held on it
        ("DK", date(2022, 1, 1), 500),  # next year's
    )
    pledge = compute_pledge(homes, "year-end", RATE_100, 2021, date(2021, 7, 1))
    # 100 + 30 = 130 homes x 100.00 = 13,000.00
    assert (pledge.unit_basis, pledge.amount_cents) == (130, 1_300_000)


# Pro-rata basis.


def test_pro_rata_homes_held_all_year_give_the_full_rate() -> None:
    homes = portfolio(("SE", date(2021, 1, 1), 110_000))
    pledge = compute_pledge(homes, "pro-rata", RATE_100, 2021, date(2021, 1, 1))
    # 110,000 homes x 365 days = 40,150,000 unit-days; x 100.00 / 365 = 11,000,000.00
    assert pledge.unit_basis == 40_150_000
    assert pledge.amount_cents == 1_100_000_000


def test_pro_rata_with_mid_year_acquisition_and_a_disposal() -> None:
    homes = portfolio(
        ("SE", date(2023, 1, 1), 100),
        ("DE", date(2023, 4, 1), 50),
        ("SE", date(2023, 10, 1), -20),
    )
    pledge = compute_pledge(homes, "pro-rata", RATE_100, 2023, date(2023, 1, 1))
    # SE: 80 homes all year: 80 x 365 = 29,200; 20 homes from 1 Jan to 30 Sep (the
    #     disposal day excluded): 31+28+31+30+31+30+31+31+30 = 273 days, 20 x 273 = 5,460.
    # DE: 50 homes from 1 Apr to 31 Dec: 30+31+30+31+31+30+31+30+31 = 275 days = 13,750.
    # Total 29,200 + 5,460 + 13,750 = 48,410 unit-days.
    # 10,000 cents x 48,410 / 365 = 484,100,000 / 365 = 1,326,301 rest 135 (0.37 cent):
    # rounds down to 1,326,301 cents = 13,263.01.
    assert pledge.unit_basis == 48_410
    assert pledge.amount_cents == 1_326_301


def test_pro_rata_leap_year_divides_by_366() -> None:
    # 100 homes from 1 March to 31 December: 31+30+31+30+31+31+30+31+30+31 = 306 days
    # in both years: 30,600 unit-days. Only the divisor differs.
    leap = compute_pledge(portfolio(("SE", date(2024, 3, 1), 100)), "pro-rata", RATE_100,
                          2024, date(2024, 1, 1))  # fmt: skip
    common = compute_pledge(portfolio(("SE", date(2023, 3, 1), 100)), "pro-rata", RATE_100,
                            2023, date(2023, 1, 1))  # fmt: skip
    assert leap.unit_basis == common.unit_basis == 30_600
    # 306,000,000 / 366 = 836,065.57 -> 836,066 cents = 8,360.66
    assert leap.amount_cents == 836_066
    # 306,000,000 / 365 = 838,356.16 -> 838,356 cents = 8,383.56
    assert common.amount_cents == 838_356


def test_pro_rata_whole_leap_year_is_the_full_rate() -> None:
    homes = portfolio(("SE", date(2024, 1, 1), 100))
    pledge = compute_pledge(homes, "pro-rata", RATE_100, 2024, date(2024, 1, 1))
    # 100 x 366 = 36,600 unit-days; 10,000 x 36,600 / 366 = 1,000,000 cents = 10,000.00
    assert (pledge.unit_basis, pledge.amount_cents) == (36_600, 1_000_000)


def test_pro_rata_counts_days_from_the_partnership_start_on() -> None:
    # 1,000 homes held since January, partnership from 1 July 2021: only
    # 1 Jul to 31 Dec count: 31+31+30+31+30+31 = 184 days, 184,000 unit-days.
    homes = portfolio(("SE", date(2021, 1, 1), 1000))
    pledge = compute_pledge(homes, "pro-rata", RATE_100, 2021, date(2021, 7, 1))
    # 1,840,000,000 / 365 = 5,041,095.89 -> 5,041,096 cents = 50,410.96
    assert (pledge.unit_basis, pledge.amount_cents) == (184_000, 5_041_096)
    # The next year counts in full: 1,000 x 365 days x 100.00 / 365 = 100,000.00.
    following = compute_pledge(homes, "pro-rata", RATE_100, 2022, date(2021, 7, 1))
    assert (following.unit_basis, following.amount_cents) == (365_000, 10_000_000)


def test_the_reference_case_first_year() -> None:
    # 110,000 homes from the announcement on 1 July 2021: 110,000 x 184 days =
    # 20,240,000 unit-days; 10,000 x 20,240,000 / 365 = 554,520,547.95 -> 554,520,548.
    homes = portfolio(("SE", date(2021, 7, 1), 110_000))
    pledge = compute_pledge(homes, "pro-rata", RATE_100, 2021, date(2021, 7, 1))
    assert (pledge.unit_basis, pledge.amount_cents) == (20_240_000, 554_520_548)


# Half-even, once, on the total. A common year never gives an exact half cent (365 is
# odd); a leap year does when rate x unit-days = 366 k + 183, so the rate in cents must be
# odd: 0.01 or 0.03 can, 1.00 never can (100 x unit-days is even, 366 k + 183 is odd).


JULY_2 = date(2024, 7, 2)  # 2 July to 31 December 2024: 30+31+30+31+30+31 = 183 days


@pytest.mark.parametrize(
    ("homes", "rate_cents", "expected_cents"),
    [
        (1, 1, 0),  # 183 unit-days x 0.01 / 366 = 0.5 cent -> 0 (down to even)
        (3, 1, 2),  # 549 unit-days x 0.01 / 366 = 1.5 cents -> 2 (up to even)
        (5, 1, 2),  # 915 unit-days x 0.01 / 366 = 2.5 cents -> 2 (down to even)
        (7, 1, 4),  # 1,281 unit-days x 0.01 / 366 = 3.5 cents -> 4 (up to even)
        (1, 3, 2),  # 183 x 0.03 / 366 = 1.5 cents -> 2 (up to even)
        (1, 2, 1),  # 183 x 0.02 / 366 = 1 cent exactly
    ],
    ids=["0.5-down", "1.5-up", "2.5-down", "3.5-up", "rate-0.03-up", "exact"],
)
def test_half_cent_rounds_to_even(homes: int, rate_cents: int, expected_cents: int) -> None:
    pledge = compute_pledge(portfolio(("SE", JULY_2, homes)), "pro-rata", rate_cents, 2024,
                            date(2024, 1, 1))  # fmt: skip
    assert pledge.unit_basis == 183 * homes
    assert pledge.amount_cents == expected_cents


def test_rounding_happens_once_on_the_total_not_per_country() -> None:
    # Each country alone is half a cent (rounding to 0); together 366 unit-days x 0.01
    # / 366 = exactly one cent. Rounding per country would give 0.
    homes = portfolio(("SE", JULY_2, 1), ("DE", JULY_2, 1))
    pledge = compute_pledge(homes, "pro-rata", 1, 2024, date(2024, 1, 1))
    assert (pledge.unit_basis, pledge.amount_cents) == (366, 1)


# Holding: from the acquisition date (inclusive) to the disposal date (exclusive).


def test_disposal_is_exclusive_of_its_date() -> None:
    homes = portfolio(("SE", date(2023, 1, 1), 10), ("SE", date(2023, 1, 2), -10))
    assert homes.held("SE", date(2023, 1, 1)) == 10
    assert homes.held("SE", date(2023, 1, 2)) == 0
    assert homes.held("SE", date(2022, 12, 31)) == 0
    # Held on 1 January only: 10 unit-days.
    assert homes.unit_days(date(2023, 1, 1), date(2023, 12, 31)) == 10


def test_bought_and_sold_on_the_same_day_is_never_held() -> None:
    homes = portfolio(("SE", date(2023, 5, 5), 4), ("SE", date(2023, 5, 5), -4))
    assert homes.held("SE", date(2023, 5, 5)) == 0
    assert homes.unit_days(date(2023, 1, 1), date(2023, 12, 31)) == 0


def test_held_by_country_and_total() -> None:
    homes = portfolio(
        ("SE", date(2021, 7, 1), 100), ("GW", date(2021, 8, 1), 5), ("GW", date(2021, 9, 1), -5)
    )
    assert homes.held_by_country(date(2021, 8, 15)) == {"GW": 5, "SE": 100}
    assert homes.held_by_country(date(2021, 9, 1)) == {"SE": 100}
    assert homes.held_total(date(2021, 8, 15)) == 105
    assert homes.held_total(date(2021, 6, 30)) == 0


def test_lowest_from_sees_later_disposals() -> None:
    homes = portfolio(("DE", date(2021, 7, 1), 100), ("DE", date(2021, 10, 1), -60))
    assert homes.held("DE", date(2021, 8, 1)) == 100
    assert homes.lowest_from("DE", date(2021, 8, 1)) == 40
    assert homes.lowest_from("DE", date(2021, 10, 1)) == 40
    assert homes.lowest_from("DE", date(2021, 6, 1)) == 0
    assert homes.lowest_from("SE", date(2021, 8, 1)) == 0


def test_backdated_disposal_refused_when_a_later_disposal_would_go_negative() -> None:
    ledger, _ = build(
        partnership(basis="pro-rata"),
        c.AcquireUnits(country="DE", units=100, on=date(2021, 7, 1)),
        c.DisposeUnits(country="DE", units=60, on=date(2021, 10, 1)),
    )
    # On 1 August 100 are held, but 60 of them are already sold on 1 October:
    # only 40 can go on 1 August without the October sale selling homes not held.
    backdated = c.DisposeUnits(country="DE", units=50, on=date(2021, 8, 1))
    with pytest.raises(InsufficientUnitsError) as refused:
        ledger.decide(backdated)
    assert str(refused.value) == (
        "disposal of 50 units in DE on 2021-08-01 exceeds the 100 held then "
        "(40 after later disposals) by 10"
    )
    facts = ledger.decide(c.DisposeUnits(country="DE", units=40, on=date(2021, 8, 1)))
    assert [fact.TYPE for fact in facts] == ["UnitsDisposed"]


# Properties against a day-by-day count.


changes = st.lists(
    st.tuples(
        st.sampled_from(COUNTRIES),
        st.dates(date(2020, 6, 1), date(2025, 6, 1)),
        st.integers(-50, 200),
    ),
    max_size=12,
)


@given(changes, st.integers(2020, 2025), st.dates(date(2020, 1, 1), date(2025, 12, 31)))
def test_unit_days_equal_a_day_by_day_count(
    moves: list[tuple[str, date, int]], year: int, start: date
) -> None:
    homes = portfolio(*moves)
    first = max(date(year, 1, 1), start)
    expected, day = 0, first
    while day <= date(year, 12, 31):
        expected += sum(delta for _, on, delta in moves if on <= day)
        day += timedelta(days=1)
    pledge = compute_pledge(homes, "pro-rata", 1, year, start)
    assert pledge.unit_basis == expected


@given(changes, st.integers(2020, 2025), st.integers(1, 20_000))
def test_pro_rata_amount_is_the_half_even_rounding_of_the_exact_share(
    moves: list[tuple[str, date, int]], year: int, rate_cents: int
) -> None:
    pledge = compute_pledge(portfolio(*moves), "pro-rata", rate_cents, year, date(2020, 1, 1))
    exact_times_two = 2 * rate_cents * pledge.unit_basis
    days = days_in_year(year)
    # |amount - exact| <= 1/2 cent, and exactly 1/2 only with an even amount.
    distance = abs(2 * pledge.amount_cents * days - exact_times_two)
    assert distance <= days
    if distance == days:
        assert pledge.amount_cents % 2 == 0


def test_days_in_year() -> None:
    assert [days_in_year(y) for y in (2021, 2023, 2024, 2000, 2100)] == [365, 365, 366, 366, 365]

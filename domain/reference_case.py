"""The reference case, "A Home for a Home", as commands: what `demo` records, each fact
with its business date in 2021-2022 (recorded whenever it is run).

Heimstaden (110,000+ homes across Europe) gives EUR 100 per home per year to SOS
Children's Villages from 1 July 2021; in the first year this funds more than 30
initiatives in 19 countries, among them the Guinea-Bissau village turned into a
sustainable hub and Dutch housing that keeps siblings in care together.
The figures below are illustrative, shaped like the announced programme.
"""

from __future__ import annotations

from decimal import Decimal

from homeledger.domain import commands as c

START = "2021-07-01"
RATE = "100.00"

# Homes held from the start, per Heimstaden country: 111,150 in all.
HOMES_AT_START = {
    "SE": 41_800, "DE": 21_400, "DK": 12_150, "NL": 13_600, "NO": 9_700,
    "CZ": 8_300, "PL": 2_100, "FI": 1_400, "IS": 650, "GB": 50,
}  # fmt: skip

# (id, name, country, programme)
INITIATIVES = [
    ("gw-bissau-village", "Bissau children's village: sustainable hub", "GW", "family-like care"),
    ("gw-bafata-families", "Bafata family strengthening", "GW", "family strengthening"),
    ("nl-siblings-together", "Siblings together housing, Netherlands", "NL", "family-like care"),
    ("nl-youthcan", "YouthCan! Netherlands", "NL", "youth employability"),
    ("se-family-support", "Family support, Sweden", "SE", "family strengthening"),
    ("no-youth-mentoring", "Youth mentoring, Norway", "NO", "youth employability"),
    ("dk-foster-families", "Foster family network, Denmark", "DK", "family-like care"),
    ("de-berlin-family-centre", "Family centre Berlin-Moabit", "DE", "family strengthening"),
    ("de-youthcan", "YouthCan! Germany", "DE", "youth employability"),
    ("pl-biala-podlaska", "Family-like care, Biala Podlaska", "PL", "family-like care"),
    ("pl-family-strengthening", "Family strengthening, Lublin", "PL", "family strengthening"),
    ("cz-karlova-studanka", "Foster care, Karlova Studanka", "CZ", "family-like care"),
    ("fi-family-coaching", "Family coaching, Finland", "FI", "family strengthening"),
    ("et-addis-youth", "Youth employability, Addis Ababa", "ET", "youth employability"),
    ("et-hawassa-families", "Family strengthening, Hawassa", "ET", "family strengthening"),
    ("ke-mombasa-youth", "Youth skills, Mombasa", "KE", "youth employability"),
    ("ke-meru-families", "Family strengthening, Meru", "KE", "family strengthening"),
    ("mw-lilongwe-care", "Alternative care, Lilongwe", "MW", "family-like care"),
    ("ug-gulu-families", "Family strengthening, Gulu", "UG", "family strengthening"),
    ("ug-kakiri-youth", "Youth employability, Kakiri", "UG", "youth employability"),
    ("sn-dakar-youth", "Youth employability, Dakar", "SN", "youth employability"),
    ("za-ethekwini-care", "Family-like care, eThekwini", "ZA", "family-like care"),
    ("bd-dhaka-families", "Family strengthening, Dhaka", "BD", "family strengthening"),
    ("bd-khulna-youth", "Youth skills, Khulna", "BD", "youth employability"),
    ("np-pokhara-care", "Family-like care, Pokhara", "NP", "family-like care"),
    ("pe-lima-families", "Family strengthening, Lima", "PE", "family strengthening"),
    ("pe-cusco-youth", "Youth employability, Cusco", "PE", "youth employability"),
    ("gt-jocotenango-care", "Family-like care, Jocotenango", "GT", "family-like care"),
    ("gt-quetzaltenango-youth", "Youth employability, Quetzaltenango", "GT", "youth employability"),
    ("mw-blantyre-families", "Family strengthening, Blantyre", "MW", "family strengthening"),
    ("sn-kaolack-families", "Family strengthening, Kaolack", "SN", "family strengthening"),
    ("za-cape-town-youth", "Youth employability, Cape Town", "ZA", "youth employability"),
]

GW_HUB_MILESTONES = [
    ("solar panels installed, also powering the surrounding community", "2022-03-15"),
    ("crisis shelter for children opened", "2022-06-01"),
    ("multi-purpose centre with computer room opened", "2022-09-20"),
    ("vocational training started", "2022-11-07"),
]


def _allocation(index: int, year: int) -> Decimal:
    # Larger grants to the two flagship projects, the rest spread by programme.
    if index == 0:
        return Decimal("1500000.00") if year == 2021 else Decimal("900000.00")
    if index == 2:
        return Decimal("850000.00") if year == 2021 else Decimal("600000.00")
    return Decimal("200000.00") + Decimal(index % 7) * Decimal("20000.00")


def partnership(**changes: object) -> c.EstablishPartnership:
    """The partnership's terms (EUR 100 per home per year, year-end basis), or a variant."""
    terms: dict[str, object] = {
        "donor": "Heimstaden", "beneficiary": "SOS Children's Villages", "rate": RATE,
        "currency": "EUR", "basis": "year-end", "start": START,
    }  # fmt: skip
    return c.EstablishPartnership.model_validate(terms | changes)


def commands() -> list[c.Command]:
    """The partnership's first two years, in the order an operator would record them."""
    out: list[c.Command] = [partnership()]
    out += [
        c.AcquireUnits(country=country, units=homes, on=START, ref="portfolio at start")
        for country, homes in HOMES_AT_START.items()
    ]
    out += [
        c.RegisterInitiative(id=key, name=name, country=country, programme=programme, on=START)
        for key, name, country, programme in INITIATIVES
    ]
    out += [
        c.AcquireUnits(country="DE", units=1_850, on="2021-10-01", ref="Berlin portfolio"),
        c.DisposeUnits(country="SE", units=600, on="2021-11-15", ref="Malmo sale"),
        c.PledgeDonation(year=2021, on=START),  # announced with the partnership
    ]
    out += _year_allocations(2021)
    out += [
        c.ReceiveDonation(year=2021, amount=Decimal("5000000.00"), on="2021-12-15"),
        c.ReceiveDonation(year=2021, amount=Decimal("6240000.00"), on="2022-03-31"),
        c.DisburseFunds(initiative="gw-bissau-village", amount=Decimal("900000.00"),
                        on="2022-01-20"),
        c.DisburseFunds(initiative="nl-siblings-together", amount=Decimal("500000.00"),
                        on="2022-02-10"),
        c.RecordMilestone(initiative="nl-siblings-together",
                          name="first sibling group moved in together", on="2022-05-02",
                          evidence="SOS NL quarterly report Q2-2022"),
        c.AcquireUnits(country="GB", units=3_200, on="2022-04-01", ref="UK entry"),
        c.AcquireUnits(country="NL", units=2_400, on="2022-06-30", ref="Dutch portfolio"),
        c.PledgeDonation(year=2022, on="2022-01-03"),
    ]  # fmt: skip
    out += [
        c.RecordMilestone(initiative="gw-bissau-village", name=name, on=on,
                          evidence=f"SOS GW field report {on}")
        for name, on in GW_HUB_MILESTONES
    ]  # fmt: skip
    out += _year_allocations(2022)
    out += [
        c.ReleaseAllocation(id="2021-fi-family-coaching", amount=Decimal("100000.00"),
                            reason="programme merged into national family services",
                            on="2022-08-31"),
        c.CloseInitiative(id="fi-family-coaching", on="2022-08-31",
                          reason="merged into national family services"),
        c.DisburseFunds(initiative="gw-bissau-village", amount=Decimal("1200000.00"),
                        on="2022-10-05"),
        c.ReceiveDonation(year=2022, amount=Decimal("11700000.00"), on="2022-12-20"),
    ]  # fmt: skip
    return out


def _year_allocations(year: int) -> list[c.Command]:
    on = "2021-09-01" if year == 2021 else "2022-02-01"
    return [
        c.AllocateFunds(initiative=key, year=year, amount=_allocation(index, year),
                        allocation_id=f"{year}-{key}", on=on)
        for index, (key, _, _, _) in enumerate(INITIATIVES)
        if not (year == 2022 and key == "fi-family-coaching")
    ]  # fmt: skip

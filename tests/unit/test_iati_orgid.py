"""IATI organisation identifiers: PREFIX-NUMBER, split against the registration agencies."""

from __future__ import annotations

import pytest

from homeledger.projections.iati.orgid import OrganisationIdError, parse_org_id


@pytest.mark.parametrize(
    ("text", "prefix", "number"),
    [
        ("NL-KVK-41202535", "NL-KVK", "41202535"),
        ("GB-CHC-1234567", "GB-CHC", "1234567"),
        ("DE-CR-HRB_12345", "DE-CR", "HRB_12345"),
        ("SE-ON-802002-7234", "SE-ON", "802002-7234"),
        ("CA_AB-ABT-2012345", "CA_AB-ABT", "2012345"),
        ("XM-DAC-41114", "XM-DAC", "41114"),
        ("XI-IATI-EC_DEVCO", "XI-IATI", "EC_DEVCO"),
        ("SE-BLV-8020027234", "SE-BLV", "8020027234"),  # withdrawn, still a published prefix
    ],
)
def test_a_known_register_and_a_number(text: str, prefix: str, number: str) -> None:
    parsed = parse_org_id(text)
    assert (parsed.prefix, parsed.number, str(parsed)) == (prefix, number, text)


@pytest.mark.parametrize(
    "text",
    ["", " ", " NL-KVK-41202535", "NL-KVK-41202535 ", "NL-KVK 41202535", "nl-kvk-41202535",
     "AA-AAA-123456789", "XE-EXAMPLE-1", "NL-KVK-", "NL-KVK--1", "NL-KVK-4120/2535",
     "NL-KVK-41&2", "SOS Kinderdorpen", "NL-KVK-" + "9" * 200, "NL-KVK-\u0661\u0662"],
    ids=["empty", "blank", "leading", "trailing", "inner-space", "lower-case", "placeholder",
         "example", "no-number", "dash-number", "slash", "ampersand", "a-name", "too-long",
         "non-ascii"],
)  # fmt: skip
def test_refused(text: str) -> None:
    with pytest.raises(OrganisationIdError) as refused:
        parse_org_id(text)
    assert str(refused.value).startswith("--reporting-org: ")
    assert "\n" not in str(refused.value)

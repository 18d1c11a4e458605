"""The IATI 2.03 codes the export writes, each from its codelist (docs/iati.md).

Embedded codelists (fixed by the 2.03 release): TransactionType, ActivityStatus,
ActivityDateType, OrganisationRole, RelatedActivityType, BudgetType, BudgetStatus,
DescriptionType. Non-embedded ones (OrganisationType, Sector, SectorVocabulary,
ResultType, IndicatorMeasure, DocumentCategory, FlowType, FinanceType,
OrganisationRegistrationAgency) change between releases; the values below are on the
current lists.
"""

from __future__ import annotations

import re
from importlib.resources import files

# TransactionType
INCOMING_FUNDS = "1"
OUTGOING_COMMITMENT = "2"
DISBURSEMENT = "3"
# ActivityStatus
PIPELINE = "1"
IMPLEMENTATION = "2"
CLOSED = "4"
CANCELLED = "5"
# ActivityDateType
PLANNED_START = "1"
ACTUAL_START = "2"
ACTUAL_END = "4"
# OrganisationRole
FUNDING = "1"
ACCOUNTABLE = "2"
IMPLEMENTING = "4"
# OrganisationType
INTERNATIONAL_NGO = "21"
PRIVATE_SECTOR = "70"
ORGANISATION_TYPES = {
    "10": "Government", "11": "Local Government", "15": "Other Public Sector",
    "21": "International NGO", "22": "National NGO", "23": "Regional NGO",
    "24": "Partner Country based NGO", "30": "Public Private Partnership",
    "40": "Multilateral", "60": "Foundation", "70": "Private Sector",
    "71": "Private Sector in Provider Country", "72": "Private Sector in Aid Recipient Country",
    "73": "Private Sector in Third Country", "80": "Academic, Training and Research",
    "90": "Other",
}  # fmt: skip
# RelatedActivityType: the code says what the *related* activity is
RELATED_PARENT = "1"
RELATED_CHILD = "2"
# BudgetType, BudgetStatus
BUDGET_ORIGINAL = "1"
BUDGET_REVISED = "2"
BUDGET_COMMITTED = "2"
# DescriptionType
GENERAL = "1"
# SectorVocabulary
DAC_5 = "1"
REPORTING_ORGANISATION = "99"
# ResultType, IndicatorMeasure, DocumentCategory
OUTPUT = "1"
QUALITATIVE = "5"
RESULTS_DOCUMENT = "A08"
# FlowType, FinanceType
PRIVATE_DEVELOPMENT_FINANCE = "30"
STANDARD_GRANT = "110"

# OECD DAC 5-digit purpose codes per programme (SectorVocabulary 1), by the programme
# name case-folded with its spaces collapsed; `--sector PROGRAMME=CODE` overrides.
DEFAULT_SECTORS = {
    "family strengthening": "16015",  # Social services (incl. youth development, women+ children)
    "family-like care": "16010",  # Social Protection (programmes for orphans and children)
    "family-like alternative care": "16010",
    "alternative care": "16010",
    "youth employability": "11330",  # Vocational training
}
PARTNERSHIP_SECTOR = "16010"  # Social Protection: the partnership as a whole
SECTOR_CODE = re.compile(r"[1-9][0-9]{4}")


def programme_key(programme: str) -> str:
    return " ".join(programme.casefold().split())


def registration_agencies() -> frozenset[str]:
    """The OrganisationRegistrationAgency prefixes (the packaged snapshot)."""
    text = (
        files("homeledger.projections.iati")
        .joinpath("codelists", "OrganisationRegistrationAgency.txt")
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )

"""IATI organisation identifiers: `{registration agency}-{number in its register}`.

A prefix may itself hold a dash (`AE-DU-CR`) or an underscore (`CA-CRA_ACR`), so the
identifier is split against the known prefixes (the OrganisationRegistrationAgency
codelist), the longest that matches. Refused: surrounding spaces; anything but letters,
digits and `- _ . :` (IATI forbids `/ & | ?` and spaces); an unknown prefix (prefixes
are upper case); nothing usable after the prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from homeledger.projections.iati.codes import registration_agencies

_ALLOWED = re.compile(r"[A-Za-z0-9._:-]+")
MAX_LENGTH = 200


class OrganisationIdError(ValueError):
    """Not a usable IATI organisation identifier."""


@dataclass(frozen=True)
class OrganisationId:
    prefix: str
    number: str

    def __str__(self) -> str:
        return f"{self.prefix}-{self.number}"


@lru_cache(maxsize=1)
def _prefixes() -> frozenset[str]:
    return registration_agencies()


def parse_org_id(text: str, flag: str = "--reporting-org") -> OrganisationId:
    shown = repr(text[:40])
    if not text.strip():
        raise OrganisationIdError(f"{flag}: an IATI organisation identifier is required")
    if text != text.strip():
        raise OrganisationIdError(f"{flag}: {shown} has spaces before or after it")
    if len(text) > MAX_LENGTH:
        raise OrganisationIdError(f"{flag}: {shown}... is longer than {MAX_LENGTH} characters")
    if not _ALLOWED.fullmatch(text):
        raise OrganisationIdError(
            f"{flag}: {shown} may hold only letters, digits and - _ . : (no spaces, no / & | ?)"
        )
    matches = [p for p in _prefixes() if text.startswith(p + "-")]
    if not matches:
        raise OrganisationIdError(
            f"{flag}: {shown} does not start with a known registration agency prefix "
            "(IATI identifiers are PREFIX-NUMBER, e.g. NL-KVK-41202535 or GB-CHC-1234567)"
        )
    prefix = max(matches, key=len)
    number = text[len(prefix) + 1 :]
    if not number or not number[0].isalnum():
        raise OrganisationIdError(f"{flag}: {shown} has no number after the prefix {prefix}")
    return OrganisationId(prefix, number)

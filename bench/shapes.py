"""Ledger shapes for measuring and testing at size, as import files (JSON Lines).

`allocation_heavy`: ten countries with homes from the start, ten pledge years, 500
initiatives, and the rest allocations of 1.00-100.00 to random initiatives and years:
the shape of a partnership many years old, where most facts are allocations.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

COUNTRIES = ("SE", "DE", "NO", "DK", "NL", "PL", "CZ", "FI", "GB", "IS")
FIRST_YEAR, YEARS, INITIATIVES = 2015, 10, 500


def allocation_heavy(total: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`total` import lines (one fact each) of the allocation-heavy shape."""
    rnd = random.Random(seed)
    head: list[dict[str, Any]] = [
        {"command": "init", "donor": "Heimstaden", "beneficiary": "SOS Children's Villages",
         "rate": "100.00", "currency": "EUR", "basis": "year-end",
         "start": f"{FIRST_YEAR}-01-01"},
        *({"command": "units.acquire", "country": country, "units": 10000,
           "on": f"{FIRST_YEAR}-01-01"} for country in COUNTRIES),
        *({"command": "pledge", "year": year} for year in range(FIRST_YEAR, FIRST_YEAR + YEARS)),
        *({"command": "initiative.register", "id": f"init-{n}", "name": f"Initiative {n}",
           "country": rnd.choice(COUNTRIES), "programme": "family strengthening"}
          for n in range(INITIATIVES)),
    ]  # fmt: skip
    yield from head[:total]
    for _ in range(total - len(head)):
        yield {"command": "allocate", "initiative": f"init-{rnd.randrange(INITIATIVES)}",
               "year": FIRST_YEAR + rnd.randrange(YEARS),
               "amount": f"{rnd.randint(100, 10000) // 100}.{rnd.randint(100, 10000) % 100:02d}"}


def write_jsonl(path: Path, lines: Iterator[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    return path

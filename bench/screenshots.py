"""The screenshots in docs/: the reference case's 2021 and 2022 statements in Chromium.

    python -m bench.screenshots [--out docs]

Records the reference case on a fresh SQLite store (recorded from 10 January 2023 on,
after every date it holds), writes both statements with `homeledger statement`, opens
each in the system's Chromium (Playwright; never a downloaded browser) and saves the
top of the page at 1200 pixels wide: docs/statement-2021.png, docs/statement-2022.png.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.domain import reference_case

ROOT = Path(__file__).resolve().parent.parent
YEARS = (2021, 2022)
WIDTH, HEIGHT = 1200, 1700


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2023, 1, 10, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def record(url: str) -> None:
    app = build_application(Settings(store=url, actor="ops@sos-kinderdorpen.example"),
                            clock=_Clock())  # fmt: skip
    try:
        for command in reference_case.commands():
            app.execute(command)
        app.seal()
    finally:
        app.store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.screenshots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="hl-screenshots-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'reference.db'}"
        record(url)
        pages = []
        for year in YEARS:
            html = Path(tmp) / f"statement-{year}.html"
            subprocess.run([sys.executable, "-m", "homeledger.cli", "--store", url, "statement",
                            "--year", str(year), "--out", str(html)], check=True)  # fmt: skip
            pages.append((year, html))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            for year, html in pages:
                page.goto(html.resolve().as_uri(), wait_until="load")
                shot = args.out / f"statement-{year}.png"
                page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": WIDTH,
                                                      "height": HEIGHT})  # fmt: skip
                print(shot)
            browser.close()


if __name__ == "__main__":
    main()

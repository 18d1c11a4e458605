"""`homeledger export iati`: the reference case as IATI 2.03 activity XML.

Valid against the official schema (the packaged copy and the shared one); every receipt,
allocation, release and disbursement exactly once, with its sign and its date; the sums
per activity equal `balances --by initiative`, per pledge year `balances --by year`;
the same ledger gives the same bytes; refusals exit 2 with one line and write nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.cli.main import cli
from homeledger.projections import cut as cut_module
from homeledger.projections.as_of import PointInTime
from homeledger.projections.cut import LedgerCut, Reversal, open_cut
from homeledger.projections.db import ProjectionDB
from homeledger.projections.iati.mapping import ExportOptions, export_iati
from homeledger.projections.iati.schema import schema_dir
from homeledger.projections.runner import ProjectionRunner
from tests.documents_ledgers import (
    HOSTILE_ID,
    HOSTILE_NAME,
    UNWRITABLE,
    RecordedLedger,
    recorded_ledger,
    run,
    unwritable_output,
)
from tests.helpers import unavailable

REF, NAME = "NL-KVK-41202535", "SOS Kinderdorpen Nederland"
SHARED_SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "iati-2.03"
ZERO = Decimal("0.00")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedLedger:
    folder = tmp_path_factory.mktemp("iati")
    return recorded_ledger(f"sqlite:///{folder / 'ledger.db'}", folder)


def export(url: str, out: Path, *extra: str) -> Any:
    result = CliRunner().invoke(cli, ["--store", url, "export", "iati", "--out", str(out),
                                      "--reporting-org", REF, "--reporting-org-name", NAME,
                                      *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return etree.parse(str(out))


def schema(folder: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(folder / "iati-activities-schema.xsd")))


def shared_schemas() -> Path:
    if not SHARED_SCHEMAS.is_dir():
        unavailable(f"the official IATI 2.03 schemas are missing: {SHARED_SCHEMAS}")
    return SHARED_SCHEMAS


def transactions(tree: Any, activity: str | None = None) -> list[dict[str, Any]]:
    found = []
    for act in tree.iter("iati-activity"):
        ident = act.findtext("iati-identifier")
        if activity is not None and ident != activity:
            continue
        for t in act.iter("transaction"):
            value = t.find("value")
            found.append({
                "activity": ident, "ref": int(t.get("ref")),
                "code": t.find("transaction-type").get("code"),
                "date": t.find("transaction-date").get("iso-date"),
                "value_date": value.get("value-date"), "currency": value.get("currency"),
                "amount": Decimal(value.text),
            })  # fmt: skip
    return found


def sums(tree: Any) -> dict[tuple[str, str], Decimal]:
    total: dict[tuple[str, str], Decimal] = {}
    for t in transactions(tree):
        key = (t["activity"], t["code"])
        total[key] = total.get(key, ZERO) + t["amount"]
    return total


def test_the_reference_case_validates_against_the_official_schema(
    store_url: str, tmp_path: Path
) -> None:
    recorded = recorded_ledger(store_url, tmp_path)
    out = tmp_path / "sos.xml"
    tree = export(recorded.url, out)
    for folder in (schema_dir(), shared_schemas()):
        checker = schema(folder)
        assert checker.validate(tree), checker.error_log
    activities = tree.findall("iati-activity")
    assert len(activities) == 1 + 33
    assert "<script>" not in out.read_text(encoding="utf-8")


def test_every_money_fact_appears_once_with_its_sign_and_date(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    tree = export(recorded.url, tmp_path / "all.xml")
    found = transactions(tree)
    refs = Counter(t["ref"] for t in found)
    assert all(count == 1 for count in refs.values())
    by_ref = {t["ref"]: t for t in found}
    expected: dict[int, tuple[str, str, Decimal, str]] = {}
    parent = f"{REF}-partnership_heimstaden"
    for event in run(recorded.url, "events", "list", "--type", "DonationReceived"):
        data = event["data"]
        expected[event["position"]] = (parent, "1", Decimal(data["amount"]), data["received_on"])
    for row in run(recorded.url, "balances", "--by", "initiative"):
        for line in run(recorded.url, "audit", row["initiative"]):
            amount = Decimal(line["amount"] or "0")
            activity = f"{REF}-{line['initiative']}"
            kinds = {"FundsAllocated": ("2", amount), "AllocationReleased": ("2", -amount),
                     "FundsDisbursed": ("3", amount)}  # fmt: skip
            if line["type"] in kinds:
                code, signed = kinds[line["type"]]
                expected[line["position"]] = (activity, code, signed, line["effective_date"])
    assert set(by_ref) == set(expected)
    for position, (activity, code, amount, on) in expected.items():
        t = by_ref[position]
        assert (t["activity"], t["code"], t["amount"], t["date"]) == (activity, code, amount, on)
        assert t["value_date"] == on and t["currency"] == "EUR"
    assert any(t["amount"] < 0 for t in found)  # the release of fi-family-coaching


def test_sums_per_activity_equal_balances_by_initiative(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    total = sums(export(recorded.url, tmp_path / "all.xml"))
    for row in run(recorded.url, "balances", "--by", "initiative"):
        activity = f"{REF}-{row['initiative']}"
        committed = Decimal(row["allocated"]) - Decimal(row["released"])
        assert total.get((activity, "2"), ZERO) == committed
        assert total.get((activity, "3"), ZERO) == Decimal(row["disbursed"])


def test_sums_per_pledge_year_equal_balances_by_year(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    for row in run(recorded.url, "balances", "--by", "year"):
        year = row["year"]
        tree = export(recorded.url, tmp_path / f"{year}.xml", "--year", str(year))
        found = transactions(tree)
        received = sum((t["amount"] for t in found if t["code"] == "1"), ZERO)
        committed = sum((t["amount"] for t in found if t["code"] == "2"), ZERO)
        assert received == Decimal(row["received"])
        assert committed == Decimal(row["allocated"]) - Decimal(row["released"])
        disbursed = [t for t in found if t["code"] == "3"]
        assert all(t["date"].startswith(str(year)) for t in disbursed)
        budgets = tree.findall("iati-activity")[0].findall("budget")
        assert {b.find("period-start").get("iso-date") for b in budgets} == {f"{year}-01-01"}
        assert Decimal(budgets[-1].findtext("value")) == Decimal(row["pledged"])
        children = [Decimal(b.findtext("value")) for a in tree.findall("iati-activity")[1:]
                    for b in a.findall("budget")]  # fmt: skip
        assert children, "the initiatives' budgets for the year"


def test_the_same_ledger_gives_the_same_bytes_and_stable_identifiers(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    first = export(recorded.url, tmp_path / "a.xml")
    export(recorded.url, tmp_path / "b.xml")
    assert (tmp_path / "a.xml").read_bytes() == (tmp_path / "b.xml").read_bytes()
    head = run(recorded.url, "events", "show", str(recorded.head))
    head = head[0] if isinstance(head, list) else head
    generated = first.getroot().get("generated-datetime")
    assert generated == head["recorded_at"] or generated == head["recorded_at"].replace(
        ".000000Z", "Z")  # fmt: skip
    activities = first.findall("iati-activity")
    parent = activities[0]
    assert parent.findtext("iati-identifier") == f"{REF}-partnership_heimstaden"
    children = {a.findtext("iati-identifier") for a in activities[1:]}
    related = {r.get("ref") for r in parent.findall("related-activity") if r.get("type") == "2"}
    assert related == children
    assert f"{REF}-gw-bissau-village" in children
    for child in activities[1:]:
        up = child.find("related-activity")
        assert (up.get("ref"), up.get("type")) == (f"{REF}-partnership_heimstaden", "1")


def test_statuses_dates_sectors_and_results(recorded: RecordedLedger, tmp_path: Path) -> None:
    tree = export(recorded.url, tmp_path / "all.xml")
    by_id = {a.findtext("iati-identifier"): a for a in tree.findall("iati-activity")}
    closed = by_id[f"{REF}-fi-family-coaching"]
    assert closed.find("activity-status").get("code") == "4"
    ends = [d for d in closed.findall("activity-date") if d.get("type") == "4"]
    assert [d.get("iso-date") for d in ends] == ["2022-08-31"]
    hub = by_id[f"{REF}-gw-bissau-village"]
    assert hub.find("activity-status").get("code") == "2"
    assert hub.find("recipient-country").get("code") == "GW"
    sectors = {(s.get("vocabulary"), s.get("code")) for s in hub.findall("sector")}
    assert ("1", "16010") in sectors
    results = [r.find("title/narrative").text for r in hub.findall("result")]
    assert len(results) == 4 and results[0].startswith("solar panels installed")
    hostile = by_id[f"{REF}-{HOSTILE_ID}"]
    assert hostile.find("title/narrative").text == HOSTILE_NAME


def test_a_sector_can_be_given_per_programme(recorded: RecordedLedger, tmp_path: Path) -> None:
    tree = export(recorded.url, tmp_path / "s.xml", "--sector", "youth employability=16020")
    youth = next(a for a in tree.findall("iati-activity")
                 if a.findtext("iati-identifier") == f"{REF}-nl-youthcan")  # fmt: skip
    assert ("1", "16020") in {(s.get("vocabulary"), s.get("code")) for s in youth.findall("sector")}


class _WithReversals(LedgerCut):
    """The ledger at its cut, with reversals of three of its facts as FactReversed facts
    will give them (`reverses`, `reversed_type`, `reversed_position`, `reason`,
    `original`): the store cannot record that fact yet, its readers can already map it."""

    planted: dict[int, Reversal]

    def reversals(self) -> dict[int, Reversal]:
        return self.planted


def test_reversals_are_negative_transactions_of_the_same_type(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    store = open_store(Settings(store=recorded.url), create=False)
    db = ProjectionDB(store.location)
    ProjectionRunner(store, db).catch_up()
    base = open_cut(store, PointInTime(store, db), recorded.head)
    reversing = _WithReversals(store, base.reader, base.cut)
    receipt = run(recorded.url, "events", "list", "--type", "DonationReceived")[0]
    paid = [r for r in run(recorded.url, "audit", "nl-siblings-together")
            if r["type"] in ("FundsDisbursed", "MilestoneReached")]  # fmt: skip
    planted = [(receipt, "DonationReceived", receipt["data"])]
    planted += [(r, r["type"], {"amount": r["amount"], "initiative": r["initiative"]})
                for r in paid]  # fmt: skip
    reversing.planted = {
        fact["position"]: Reversal(
            position=recorded.head + 1 + index, event_id=f"reversal-{index}",
            effective_date=date(2022, 12, 30), recorded_at=base.cut.recorded_at,
            reversed_position=fact["position"], reversed_type=kind, reason="mistyped",
            original=original,
        )
        for index, (fact, kind, original) in enumerate(planted)
    }  # fmt: skip
    out = tmp_path / "reversed.xml"
    export_iati(reversing, out, ExportOptions(REF, NAME))
    tree = etree.parse(str(out))
    assert schema(schema_dir()).validate(tree)
    found = {t["ref"]: t for t in transactions(tree)}
    for reversal in reversing.planted.values():
        if reversal.reversed_type == "MilestoneReached":
            assert reversal.position not in found
            continue
        original, negative = found[reversal.reversed_position], found[reversal.position]
        assert negative["code"] == original["code"]
        assert negative["amount"] == -original["amount"]
        assert negative["date"] == "2022-12-30"
    siblings = next(a for a in tree.findall("iati-activity")
                    if a.findtext("iati-identifier") == f"{REF}-nl-siblings-together")  # fmt: skip
    assert siblings.findall("result") == []  # its one milestone was reversed
    total = sums(tree)
    assert total[(f"{REF}-nl-siblings-together", "3")] == ZERO
    db.close()
    store.close()
    assert cut_module.REVERSED == "FactReversed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reporting-org-name", NAME], "missing option '--reporting-org'"),
        (["--reporting-org", "", "--reporting-org-name", NAME], "identifier is required"),
        (["--reporting-org", " NL-KVK-41202535", "--reporting-org-name", NAME], "spaces"),
        (["--reporting-org", "NL-KVK 41202535", "--reporting-org-name", NAME], "may hold only"),
        (["--reporting-org", "nl-kvk-41202535", "--reporting-org-name", NAME], "prefix"),
        (["--reporting-org", "AA-AAA-123456789", "--reporting-org-name", NAME], "prefix"),
        (["--reporting-org", "NL-KVK-", "--reporting-org-name", NAME], "prefix"),
        (["--reporting-org", "NL-KVK-41202535/x", "--reporting-org-name", NAME], "may hold"),
        (["--reporting-org", REF, "--reporting-org-name", " "], "name is required"),
        (["--reporting-org", REF, "--reporting-org-name", NAME, "--reporting-org-type", "99"],
         "OrganisationType"),
        (["--reporting-org", REF, "--reporting-org-name", NAME, "--sector", "x=123"], "--sector"),
        (["--reporting-org", REF, "--reporting-org-name", NAME, "--year", "20222"], "--year"),
    ],
    ids=["missing-org", "empty-org", "spaces", "inner-space", "lower-case", "placeholder",
         "no-number", "slash", "no-name", "org-type", "sector", "year"],
)  # fmt: skip
def test_bad_input_exits_2_and_writes_nothing(
    recorded: RecordedLedger, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "refused.xml"
    result = CliRunner().invoke(cli, ["--store", recorded.url, "export", "iati",
                                      "--out", str(out), *args])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message.lower() in result.stderr.lower()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", UNWRITABLE)
def test_an_unwritable_output_exits_2_and_writes_nothing(
    recorded: RecordedLedger, tmp_path: Path, where: str
) -> None:
    out = unwritable_output(tmp_path, where, ".xml")
    result = CliRunner().invoke(cli, ["--store", recorded.url, "export", "iati", "--out",
                                      str(out), "--reporting-org", REF,
                                      "--reporting-org-name", NAME])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder.xml"]
    assert list((tmp_path / "a-folder.xml").iterdir()) == []

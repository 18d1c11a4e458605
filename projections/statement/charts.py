"""The statement's charts: matplotlib's SVG backend, inlined, each with its table.

One `Chart` holds a chart's figures; `draw` turns them into an inline SVG and the
template prints the same figures as a table beside it, so picture and table never
disagree. The SVG is byte-stable: matplotlib's defaults (never the user's
matplotlibrc), no date in the metadata, a hash salt per chart (its clip-path ids stay
the same between runs and differ between charts), text as text (`svg.fonttype` none:
selectable, searchable, in the PDF's text).
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_compact_currency, format_decimal
from markupsafe import Markup

from homeledger.projections.statement.view import Statement

TOP = 15  # bars per chart at most; the rest are summed as one
TIMELINE_MAX = 24
Value = Decimal | int


@dataclass(frozen=True)
class Chart:
    """A chart's figures: a row per label, a value per series (`kind` "bars"), or a
    milestone per row (`kind` "timeline": date, initiative, milestone)."""

    key: str
    title: str
    series: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Value, ...]], ...]
    money: bool = True
    kind: str = "bars"
    events: tuple[tuple[date, str, str], ...] = ()
    svg: Markup = field(default=Markup(""), compare=False)

    @property
    def empty(self) -> bool:
        return not self.rows and not self.events


_RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": "cycler(color=['#1f5fa8', '#e08a1e', '#3a8f5c', '#8e4fa8', '#c0392b'])",
}
_GROUP_ID = re.compile(r'<g id="[\w.-]+">')  # figure_1, axes_1, patch_3: repeat per chart


def charts_for(s: Statement, locale: str) -> dict[str, Chart]:
    """Every chart of the statement, drawn."""
    charts = [_homes(s), _years(s), _pairs("countries", f"Allocated by country, {s.year} "
                                           "pledge (net of releases)", s.by_country),
              _pairs("programmes", f"Allocated by programme, {s.year} pledge (net of "
                     "releases)", s.by_programme),
              _initiatives(s), _milestones(s)]  # fmt: skip
    return {c.key: draw(c, locale, s.terms.currency) for c in charts}


def _homes(s: Statement) -> Chart:
    years = tuple(str(y) for y, _ in s.homes_history)
    countries = sorted({c for _, held in s.homes_history for c in held})
    last = s.homes_history[-1][1] if s.homes_history else {}
    countries.sort(key=lambda c: (-last.get(c, 0), c))
    rows = [(c, tuple(held.get(c, 0) for _, held in s.homes_history)) for c in countries]
    return Chart(
        "homes", _titled("Homes per country on 31 December", rows), years, _top(rows), money=False
    )


def _years(s: Statement) -> Chart:
    rows = [(str(y.year), (y.pledged, y.received)) for y in s.years if y.year <= s.year]
    return Chart("years", "Pledged and received per pledge year", ("Pledged", "Received"),
                 tuple(rows))  # fmt: skip


def _pairs(key: str, title: str, pairs: Sequence[tuple[str, Decimal]]) -> Chart:
    rows = sorted(((name or "-", (amount,)) for name, amount in pairs),
                  key=lambda r: (-r[1][0], r[0]))  # fmt: skip
    return Chart(key, _titled(title, rows), ("Allocated",), _top(rows))


def _initiatives(s: Statement) -> Chart:
    rows = sorted(((i.name, (i.allocated - i.released, i.disbursed)) for i in s.initiatives
                   if i.allocated or i.disbursed), key=lambda r: (-r[1][0], r[0]))  # fmt: skip
    title = _titled("Disbursed against allocated per initiative, since the start", rows)
    return Chart("initiatives", title, ("Allocated (net)", "Disbursed"), _top(rows))


def _milestones(s: Statement) -> Chart:
    names = {i.key: i.name for i in s.initiatives}
    reached = [m for m in s.milestones if m.reversed_by is None]
    title = f"Milestones reached in {s.year}"
    few = s.detailed and sum(s.milestone_months) <= TIMELINE_MAX
    if few and len({m.initiative for m in reached}) <= 10:
        ordered = sorted(reached, key=lambda m: (m.reached_on, m.position))
        events = tuple((m.reached_on, names.get(m.initiative, m.initiative), m.name)
                       for m in ordered)  # fmt: skip
        return Chart("milestones", title, ("Initiative", "Milestone"), (), money=False,
                     kind="timeline", events=events)  # fmt: skip
    if not sum(s.milestone_months):
        return Chart("milestones", title, ("Milestones",), (), money=False)
    rows = tuple((date(s.year, month, 1).isoformat()[:7], (s.milestone_months[month - 1],))
                 for month in range(1, 13))  # fmt: skip
    return Chart("milestones", title + ", per month", ("Milestones",), rows, money=False)


def _titled(title: str, rows: Sequence[object]) -> str:
    return title if len(rows) <= TOP else f"{title} (the {TOP} largest of {len(rows)})"


def _top(
    rows: Sequence[tuple[str, tuple[Value, ...]]],
) -> tuple[tuple[str, tuple[Value, ...]], ...]:
    """The first TOP rows: a chart of hundreds of bars shows nothing (the rest are in
    the tables of the statement; the chart's title says how many it shows)."""
    return tuple(rows[:TOP])


def draw(chart: Chart, locale: str, currency: str) -> Chart:
    """The chart with its inline SVG (empty for a chart with nothing to show)."""
    if chart.empty:
        return chart
    from matplotlib import style  # the statement alone pays for matplotlib's import
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    def tick(value: float, _: int) -> str:
        if chart.money:
            return str(format_compact_currency(value, currency, locale=locale,
                                               fraction_digits=1))  # fmt: skip
        return str(format_decimal(value, locale=locale))

    with style.context(["default", {**_RC, "svg.hashsalt": f"homeledger-{chart.key}"}]):
        height = 3.0
        if chart.kind == "bars" and _lying(chart):
            height = max(2.4, 0.9 + 0.22 * len(chart.rows) * max(1, len(chart.series) * 0.7))
        figure = Figure(figsize=(5.2, height), layout="constrained")
        axes = figure.add_subplot()
        if chart.kind == "timeline":
            _timeline(axes, chart, locale)
        else:
            _bars(figure, axes, chart)
            values_axis = axes.xaxis if _lying(chart) else axes.yaxis
            values_axis.set_major_formatter(FuncFormatter(tick))
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Title": chart.title})
    return Chart(chart.key, chart.title, chart.series, chart.rows, chart.money, chart.kind,
                 chart.events, Markup(_inline(buffer.getvalue(), chart.key)))  # noqa: S704 - matplotlib escaped every text  # fmt: skip


def _bars(figure: object, axes: object, chart: Chart) -> None:
    """Grouped bars: upright for a few short labels, lying down (labels readable) else."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    assert isinstance(figure, Figure) and isinstance(axes, Axes)
    width = 0.8 / len(chart.series)
    lying = _lying(chart)
    for index, name in enumerate(chart.series):
        places = [j - 0.4 + width * (index + 0.5) for j in range(len(chart.rows))]
        values = [float(values[index]) for _, values in chart.rows]
        if lying:
            axes.barh(places, values, width, label=name)
        else:
            axes.bar(places, values, width, label=name)
    if lying:
        axes.set_yticks(
            range(len(chart.rows)),
            [textwrap.shorten(label, 34, placeholder="...") for label, _ in chart.rows],
        )
        axes.invert_yaxis()  # the first row on top, as in the table
        axes.tick_params(axis="x", labelrotation=30, labelsize=7)
        axes.tick_params(axis="y", labelsize=7)
    else:
        axes.set_xticks(range(len(chart.rows)), [textwrap.fill(label, 14)
                                                 for label, _ in chart.rows])  # fmt: skip
    if len(chart.series) > 1:
        figure.legend(loc="outside upper center", ncols=min(len(chart.series), 5),
                      frameon=False)  # fmt: skip


def _lying(chart: Chart) -> bool:
    return len(chart.rows) > 5 or any(len(label) > 14 for label, _ in chart.rows)


def _timeline(axes: object, chart: Chart, locale: str) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    lanes = sorted({name for _, name, _ in chart.events})
    year = chart.events[0][0].year
    for on, name, _ in chart.events:
        axes.plot([on.toordinal()], [lanes.index(name)], marker="o", markersize=7,
                  color="#1f5fa8")  # fmt: skip
    axes.set_yticks(range(len(lanes)), [textwrap.shorten(n, 28, placeholder="...")
                                        for n in lanes])  # fmt: skip
    months = [date(year, m, 1) for m in range(1, 13)]
    axes.set_xticks([m.toordinal() for m in months],
                    [str(format_date(m, "MMM", locale=locale)) for m in months])  # fmt: skip
    axes.set_xlim(date(year, 1, 1).toordinal() - 5, date(year, 12, 31).toordinal() + 5)
    axes.set_ylim(-0.7, len(lanes) - 0.3)
    axes.tick_params(axis="x", labelsize=7)
    axes.grid(axis="x", color="#d8dde3", linewidth=0.5)


def _inline(svg: str, key: str) -> str:
    """matplotlib's SVG document made fit to sit inside HTML, with ids of its own."""
    svg = svg[svg.index("<svg") :]  # no <?xml?> or <!DOCTYPE> inside HTML
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    svg = _GROUP_ID.sub("<g>", svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="chart-{key}-title" ', 1)
    # matplotlib escapes every text it writes (titles, labels), so it stays text.
    return svg.replace("<title>", f'<title id="chart-{key}-title">', 1)

"""The server-drawn SVG charts: labels, values, an accessible name and description, and
withheld figures shown as hidden, never as a number."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bot.results.aggregate import Count, Figure
from bot.web.staff.charts import Bar, bar_chart, bars_from_counts, percent, share_bar

SVG = "{http://www.w3.org/2000/svg}"
HIDDEN = "dold (färre än 5)"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def _find(element: ET.Element, path: str) -> ET.Element:
    found = element.find(path)
    assert found is not None, path
    return found


def _text(element: ET.Element, path: str) -> str:
    return _find(element, path).text or ""


def _attr(element: ET.Element, path: str, name: str) -> str:
    return _find(element, path).get(name) or ""


def test_bars_carry_labels_values_and_widths() -> None:
    bars = [Bar("Nöjd", 0.625, "63 %"), Bar("Missnöjd", 0.375, "38 %")]
    svg = _parse(bar_chart(bars, chart_id="q1", title="Hur nöjd är du?"))
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "q1-title"
    assert svg.get("aria-describedby") == "q1-desc"
    assert _text(svg, f"{SVG}title") == "Hur nöjd är du?"
    assert _attr(svg, f"{SVG}title", "id") == "q1-title"
    desc = _text(svg, f"{SVG}desc")
    assert desc == "Nöjd: 63 %; Missnöjd: 38 %"
    rows = svg.findall(f"{SVG}g")
    assert len(rows) == 2
    labels = [_text(r, f"{SVG}text[@class='label']") for r in rows]
    assert labels == ["Nöjd", "Missnöjd"]
    values = [_text(r, f"{SVG}text[@class='value']") for r in rows]
    assert values == ["63 %", "38 %"]
    fills = [_attr(r, f"{SVG}rect[@class='fill']", "width") for r in rows]
    # The full span is 78 % of the chart; the value text sits after it.
    assert fills == ["48.8%", "29.2%"]


def test_withheld_bar_is_hidden_text_not_a_number() -> None:
    bars = bars_from_counts(
        [
            Count("a", "Ja", Figure(12), Figure(0.8)),
            Count("b", "Nej", Figure(None, True), Figure(None, True)),
        ],
        HIDDEN,
    )
    assert bars[1].hidden and bars[1].text == HIDDEN
    markup = bar_chart(bars, chart_id="c", title="T", desc="Andel per svar, n = 15.")
    svg = _parse(markup)
    hidden_row = svg.findall(f"{SVG}g")[1]
    assert hidden_row.get("class") == "row hidden"
    assert hidden_row.find(f"{SVG}rect[@class='fill']") is None
    assert _text(hidden_row, f"{SVG}text[@class='value hidden-note']") == HIDDEN
    assert _text(svg, f"{SVG}desc") == f"Andel per svar, n = 15. Ja: 80 %; Nej: {HIDDEN}"


def test_text_is_escaped_and_long_labels_shortened() -> None:
    label = "<script>alert(1)</script> & " + "x" * 80
    markup = str(bar_chart([Bar(label, 0.5, "50 %")], chart_id="e", title="a < b"))
    assert "<script>" not in markup
    svg = _parse(markup)
    drawn = _text(svg, f"{SVG}g/{SVG}text[@class='label']")
    assert drawn.endswith("…") and len(drawn) == 48
    # The description keeps the whole label.
    assert label in _text(svg, f"{SVG}desc")


@pytest.mark.parametrize(
    ("value", "scale", "width"),
    [(0.0, 1.0, "0.0%"), (1.0, 1.0, "78.0%"), (2.5, 5.0, "39.0%"), (7.0, 5.0, "78.0%")],
)
def test_scale_sets_full_length(value: float, scale: float, width: str) -> None:
    svg = _parse(bar_chart([Bar("m", value, str(value))], chart_id="s", title="t", scale=scale))
    assert _attr(svg, f"{SVG}g/{SVG}rect[@class='fill']", "width") == width


def test_height_grows_with_rows_and_bad_scale_is_refused() -> None:
    one = _parse(bar_chart([Bar("a", 0.1, "10 %")], chart_id="h1", title="t"))
    three = _parse(bar_chart([Bar("a", 0.1, "10 %")] * 3, chart_id="h3", title="t"))
    assert int(three.get("height") or 0) > int(one.get("height") or 0)
    with pytest.raises(ValueError):
        bar_chart([], chart_id="x", title="t", scale=0)


def test_percent_and_share_bar() -> None:
    assert percent(Figure(0.333)) == "33 %"
    assert percent(Figure(None, True)) == ""
    assert percent(Figure()) == ""
    assert share_bar("a", Figure(None, True), HIDDEN) == Bar("a", None, HIDDEN)
    assert share_bar("a", Figure(0.5), HIDDEN) == Bar("a", 0.5, "50 %")

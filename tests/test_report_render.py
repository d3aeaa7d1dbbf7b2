"""The HTML report renderer: structure, exact numbers in data-* attributes, escaping and edge
cases, read back with the standard library's HTMLParser (no Spark)."""

from __future__ import annotations

import dataclasses
import html
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from labelqa.report.model import (
    Change,
    ClassRow,
    NoiseChange,
    ReportData,
    ScoreHistogram,
    WorstExample,
)
from labelqa.report.render import render_html

HOSTILE = 'a<b & "c"'
UNICODE = "日本語"
LONG = "an extremely long class name that goes on `and on` & on, well past any label width"
URL_ID = "https://cdn.example/img/42.jpg"
SCRIPT_ID = "<script>alert('x')</script>"
SECTIONS = ["summary", "noise", "scores", "joint", "worst", "change"]
JOINT_FIELDS = ["num_given", "threshold_given", "threshold_not_given", "cj_given_given",
                "cj_given_not", "cj_not_given", "cj_not_not", "label_issues",
                "inverse_label_issues", "separation_auc"]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


# ---------------------------------------------------------------- a small DOM collector


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    section: str | None  # id of the enclosing <section>
    ancestors: tuple[str, ...]
    texts: list[str] = field(default_factory=list)
    classes: tuple[str, ...] = ()  # class attributes of the ancestors, nearest last

    @property
    def text(self) -> str:
        return "".join(self.texts)


class Collector(HTMLParser):
    """Every element in document order, with attributes, enclosing section and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.stack: list[Element] = []

    def _open(self, tag: str, attrs: list[tuple[str, str | None]]) -> Element:
        values = {name: value or "" for name, value in attrs}
        section = next((e.attrs.get("id") for e in reversed(self.stack) if e.tag == "section"),
                       None)
        if tag == "section":
            section = values.get("id")
        element = Element(tag, values, section, tuple(e.tag for e in self.stack),
                          classes=tuple(e.attrs.get("class", "") for e in self.stack))
        self.elements.append(element)
        return element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = self._open(tag, attrs)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.texts.append(data)

    def find(self, tag: str | None = None, section: str | None = None,
             **attrs: str) -> list[Element]:
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [e for e in self.elements
                if (tag is None or e.tag == tag) and (section is None or e.section == section)
                and all(e.attrs.get(k) == v for k, v in wanted.items())]

    def with_attr(self, name: str, tag: str | None = None,
                  section: str | None = None) -> list[Element]:
        return [e for e in self.find(tag, section) if name in e.attrs]


def parse(document: str) -> Collector:
    collector = Collector()
    collector.feed(document)
    collector.close()
    return collector


# ---------------------------------------------------------------- fixtures


def _class(index: int, name: str, noise: float, inverse: float, **overrides) -> ClassRow:
    values = dict(class_index=index, class_name=name, num_given=100 + index,
                  threshold_given=0.5 + index / 97, threshold_not_given=0.9 - index / 89,
                  cj_given_given=90 + index, cj_given_not=7 * index, cj_not_given=3 + index,
                  cj_not_not=800 - index, label_issues=4 * index, inverse_label_issues=index,
                  label_noise=noise, inverse_label_noise=inverse,
                  label_quality_score=1.0 - noise, note=None,
                  separation_auc=0.95 - index / 10)
    values.update(overrides)
    return ClassRow(**values)


@pytest.fixture
def classes() -> tuple[ClassRow, ...]:
    # sums: cat .3000…04, hostile .35, 日本語 .03, long .45, dog .03 (tie with 日本語: index wins)
    return (
        _class(0, "cat", 0.1 + 0.2, 0.0),
        _class(1, HOSTILE, 0.25, 0.1),
        _class(2, UNICODE, 0.02, 0.01),
        _class(3, LONG, 0.15, 0.3),
        _class(4, "dog", 0.01, 0.02, note="annotated on no example: <cannot judge>"),
    )


@pytest.fixture
def histogram() -> ScoreHistogram:
    return ScoreHistogram(edges=tuple(i / 10 for i in range(11)),
                          flagged=(3, 1, 1, 0, 0, 0, 0, 0, 0, 0),
                          not_flagged=(0, 0, 2, 5, 9, 20, 60, 200, 400, 100_000),
                          cutoff=0.2345678)


@pytest.fixture
def worst() -> tuple[WorstExample, ...]:
    # deliberately not in rank order
    return (
        WorstExample(2, SCRIPT_ID, 0.0213, (UNICODE,), (UNICODE, "dog"),
                     "forgot <dog> & co"),
        WorstExample(1, URL_ID, 0.01, ("cat", HOSTILE), ("cat", "dog"),
                     f"{HOSTILE} is unlikely; dog is likely"),
        WorstExample(3, "id-3", 0.1 + 0.2, ("cat",), (), "cat unlikely"),
    )


@pytest.fixture
def change() -> Change:
    return Change(previous_run_date="2026-11-26", previous_health_score=0.8102,
                  previous_num_label_issues=759, new_issues=41, resolved_issues=7,
                  class_noise_changes=(
                      NoiseChange(HOSTILE, 0.25, 0.21, 0.25 - 0.21, 0.5, 0.5, 0.0),
                      NoiseChange("cat", 0.1, 0.3, 0.1 - 0.3, 0.125, 0.0625, 0.0625)))


@pytest.fixture
def data(classes, histogram, worst, change) -> ReportData:
    return ReportData(dataset='shop "tags" <prod>', run_date="2026-11-27", run_id="run-7",
                      status="succeeded", generated_at="2026-11-27T08:00:00+00:00",
                      num_examples=4000, num_classes=len(classes), num_label_issues=793,
                      overall_health_score=0.8017412, filter_by="prune_by_noise_rate",
                      scoring_method="self_confidence", rows_quarantined=12, classes=classes,
                      histogram=histogram, worst=worst, change=change)


@pytest.fixture
def doc(data) -> Collector:
    return parse(render_html(data))


def _section_text(doc: Collector, section: str) -> str:
    return doc.find("section", id=section)[0].text


# ---------------------------------------------------------------- structure


def test_sections_in_order_each_with_heading(doc):
    assert [e.attrs["id"] for e in doc.find("section")] == SECTIONS
    for section in SECTIONS:
        assert len(doc.find("h2", section)) == 1


def test_document_is_self_contained(data):
    document = render_html(data)
    assert document.startswith("<!DOCTYPE html>")
    lowered = document.lower()
    for forbidden in ("http://", "https://", "<script", "<link", "<img", "url(", "@import"):
        assert forbidden not in lowered, forbidden
    doc = parse(document)
    assert doc.find("style") and not doc.find("script") and not doc.find("link")
    assert doc.find("footer")[0].text.startswith("generated by labelqa")
    assert data.generated_at in doc.find("footer")[0].text


def test_svgs_are_accessible_and_scalable(doc):
    svgs = doc.find("svg")
    assert len(svgs) == 2
    for svg in svgs:
        assert svg.attrs["role"] == "img" and svg.attrs["aria-label"]
        # HTMLParser lower-cases attribute names (viewBox -> viewbox)
        assert svg.attrs["width"] == "100%" and len(svg.attrs["viewbox"].split()) == 4


def test_renderer_does_not_import_pyspark():
    code = ("import sys, labelqa.report.render; "
            "sys.exit(1 if 'pyspark' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------- summary


def test_summary_numbers_and_run_facts(doc, data):
    values = {e.attrs["data-field"]: e.attrs["data-value"]
              for e in doc.with_attr("data-field", section="summary")}
    assert values == {"num_examples": "4000", "num_classes": "5", "num_label_issues": "793",
                      "overall_health_score": repr(0.8017412), "rows_quarantined": "12"}
    text = _section_text(doc, "summary")
    for fact in (data.dataset, "2026-11-27", "run-7", "succeeded", data.generated_at,
                 "prune_by_noise_rate", "self_confidence", "0.8017"):
        assert fact in text


def test_a_weak_model_is_shown_with_what_to_do(data):
    weak = parse(render_html(dataclasses.replace(data, separation_auc=0.6123)))
    values = {e.attrs["data-field"]: e.attrs["data-value"]
              for e in weak.with_attr("data-field", section="summary")}
    assert values["separation_auc"] == repr(0.6123)
    warning = weak.find("p", "summary", id="weak-separation")
    # the classes' AUCs are 0.95, 0.85, 0.75, 0.65, 0.55: two below 0.75
    assert warning[0].text == (
        "Weak model: its probabilities separate given from absent tags with a mean AUC of "
        "0.612, below 0.75 (2 of 5 classes below; see the AUC column of the confident joint). "
        "With a weak model most flags are the model's errors, not annotation errors. Use "
        "better out-of-sample predictions (a stronger model, cross-validated with more "
        "folds), or issues.filter_by=confident_learning, which flags less.")
    good = parse(render_html(dataclasses.replace(data, separation_auc=0.75)))
    assert not good.find("p", "summary", id="weak-separation")
    assert "0.750" in _section_text(good, "summary")


# ---------------------------------------------------------------- noise chart


def _bars(doc: Collector, series: str) -> list[Element]:
    return doc.find("rect", "noise", data_series=series)


def test_noise_bars_carry_exact_values_in_noise_order(doc, classes):
    expected_order = [LONG, HOSTILE, "cat", UNICODE, "dog"]
    by_name = {c.class_name: c for c in classes}
    for series in ("label_noise", "inverse_label_noise"):
        bars = _bars(doc, series)
        assert [b.attrs["data-class"] for b in bars] == expected_order
        for bar in bars:
            value = getattr(by_name[bar.attrs["data-class"]], series)
            assert bar.attrs["data-value"] == repr(value)
            assert float(bar.attrs["data-value"]) == value
            assert bar.attrs["data-class"] in bar.text  # the <title> hover text
    assert _bars(doc, "label_noise")[2].attrs["data-value"] == "0.30000000000000004"
    assert "all 5 classes" in _section_text(doc, "noise")
    assert "showing" not in _section_text(doc, "noise")


def test_noise_bar_widths_follow_values(doc):
    bars = _bars(doc, "label_noise") + _bars(doc, "inverse_label_noise")
    widest = max(bars, key=lambda b: float(b.attrs["width"]))
    assert float(widest.attrs["data-value"]) == max(float(b.attrs["data-value"]) for b in bars)
    zero = [b for b in bars if b.attrs["data-value"] == "0.0"]
    assert zero and all(float(b.attrs["width"]) == 0 for b in zero)


def test_noise_chart_truncates_to_max_classes(data):
    doc = parse(render_html(data, max_classes=2))
    assert "showing 2 of 5 classes" in _section_text(doc, "noise")
    for series in ("label_noise", "inverse_label_noise"):
        assert [b.attrs["data-class"] for b in _bars(doc, series)] == [LONG, HOSTILE]
    assert len(doc.find("tr", "joint")) == 2 + 5  # two header rows; the table is not cut


def test_long_names_are_clipped_only_where_visible(doc):
    labels = [e for e in doc.find("text", "noise") if e.text.endswith(LONG)]
    assert len(labels) == 1  # visible label + full name in its <title>
    visible = labels[0].text[: -len(LONG)]
    assert visible.endswith("…") and len(visible) <= 28 and LONG.startswith(visible[:-1])
    assert {b.attrs["data-class"] for b in doc.find("rect", "noise", data_class=LONG)} == {LONG}


def test_thousand_classes(data):
    many = tuple(_class(i, f"class {i}", (i % 37) / 1000, (i % 11) / 1000)
                 for i in range(1000))
    doc = parse(render_html(dataclasses.replace(data, classes=many, num_classes=1000)))
    assert "showing 40 of 1000 classes" in _section_text(doc, "noise")
    assert len(_bars(doc, "label_noise")) == len(_bars(doc, "inverse_label_noise")) == 40
    shown = [b.attrs["data-class"] for b in _bars(doc, "label_noise")]
    ranked = sorted(many, key=lambda c: (-(c.label_noise + c.inverse_label_noise),
                                         c.class_index))
    assert shown == [c.class_name for c in ranked[:40]]
    assert len(doc.with_attr("data-class", "tr", "joint")) == 1000


# ---------------------------------------------------------------- score histogram


def test_histogram_bars_match_counts(doc, histogram):
    for series in ("flagged", "not_flagged"):
        bars = doc.find("rect", "scores", data_series=series)
        counts = getattr(histogram, series)
        assert len(bars) == len(counts)
        assert [int(b.attrs["data-bin"]) for b in bars] == list(range(len(counts)))
        assert [int(b.attrs["data-value"]) for b in bars] == list(counts)
        for bar, count in zip(bars, counts):
            # linear scale against a 100,000 bin, yet every non-empty bin stays visible
            assert (float(bar.attrs["height"]) >= 1) if count else bar.attrs["height"] == "0.00"


def test_histogram_stacks_flagged_below_not_flagged(doc):
    flagged = doc.find("rect", "scores", data_series="flagged", data_bin="2")[0]
    above = doc.find("rect", "scores", data_series="not_flagged", data_bin="2")[0]
    assert float(above.attrs["y"]) + float(above.attrs["height"]) == pytest.approx(
        float(flagged.attrs["y"]))


def test_cutoff_line_and_label(doc, histogram):
    lines = doc.with_attr("data-cutoff", "line", "scores")
    assert len(lines) == 1 and lines[0].attrs["data-cutoff"] == repr(histogram.cutoff)
    assert "least severe flagged example: 0.2346" in _section_text(doc, "scores")


def test_no_cutoff_and_all_zero_histogram(data, histogram):
    empty = ScoreHistogram(histogram.edges, (0,) * 10, (0,) * 10, None)
    doc = parse(render_html(dataclasses.replace(data, histogram=empty)))
    assert not doc.with_attr("data-cutoff")
    assert "least severe flagged example" not in _section_text(doc, "scores")
    bars = doc.with_attr("data-bin", "rect", "scores")
    assert len(bars) == 20 and {b.attrs["data-value"] for b in bars} == {"0"}


def test_histogram_with_inconsistent_edges_is_refused(data, histogram):
    broken = dataclasses.replace(histogram, edges=histogram.edges[:-1])
    with pytest.raises(ValueError, match="edges"):
        render_html(dataclasses.replace(data, histogram=broken))


# ---------------------------------------------------------------- confident joint


def _exact(value: float | int) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def test_joint_table_has_every_class_and_exact_values(doc, classes):
    rows = doc.with_attr("data-class", "tr", "joint")
    assert [r.attrs["data-class"] for r in rows] == [c.class_name for c in classes]
    cells = doc.with_attr("data-field", "td", "joint")
    assert len(cells) == len(classes) * len(JOINT_FIELDS)
    for i, row in enumerate(classes):
        row_cells = cells[i * len(JOINT_FIELDS):(i + 1) * len(JOINT_FIELDS)]
        assert [c.attrs["data-field"] for c in row_cells] == JOINT_FIELDS
        for cell in row_cells:
            assert cell.attrs["data-value"] == _exact(getattr(row, cell.attrs["data-field"]))
    assert "<cannot judge>" in _section_text(doc, "joint")


def test_joint_shades_off_diagonal_cells_by_row_share(doc):
    def style(name: str, field_name: str) -> str:
        row = doc.elements.index(doc.find("tr", "joint", data_class=name)[0])
        cell = next(e for e in doc.elements[row:] if e.attrs.get("data-field") == field_name)
        return cell.attrs.get("style", "")

    assert style("cat", "cj_given_not") == ""  # 0 of the row: not shaded
    assert "rgba(192, 57, 43" in style("dog", "cj_given_not")
    assert "rgba(44, 127, 184" in style("dog", "cj_not_given")
    assert style("dog", "cj_given_given") == "" and style("dog", "cj_not_not") == ""


# ---------------------------------------------------------------- worst examples


def test_worst_rows_in_rank_order_with_exact_attributes(doc, worst):
    rows = doc.with_attr("data-rank", "tr", "worst")
    expected = sorted(worst, key=lambda e: e.issue_rank)
    assert [r.attrs["data-rank"] for r in rows] == ["1", "2", "3"]
    assert [r.attrs["data-id"] for r in rows] == [e.id for e in expected]
    assert [r.attrs["data-score"] for r in rows] == [repr(e.label_quality_score)
                                                     for e in expected]
    assert "0.0100" in rows[0].text and "0.3000" in rows[2].text


def _tags(doc: Collector, rank: str) -> dict[str, list[tuple[str, str, str]]]:
    """(element, data-tag, data-change) per tags cell of the row with that rank."""
    start = doc.elements.index(doc.find("tr", "worst", data_rank=rank)[0])
    found: dict[str, list[tuple[str, str, str]]] = {"given": [], "suggested": []}
    for element in doc.elements[start + 1:]:
        if element.tag == "tr":
            break
        if "data-tag" in element.attrs:
            cell = "given" if "tags given" in element.classes[-1] else "suggested"
            found[cell].append((element.tag, element.attrs["data-tag"],
                                element.attrs.get("data-change", "")))
    return found


def test_worst_tags_show_additions_and_removals(doc):
    first = _tags(doc, "1")
    assert first["given"] == [("span", "cat", ""), ("span", HOSTILE, "")]
    assert first["suggested"] == [("span", "cat", "kept"), ("ins", "dog", "added"),
                                  ("del", HOSTILE, "removed")]
    assert _tags(doc, "2")["suggested"] == [("span", UNICODE, "kept"), ("ins", "dog", "added")]
    assert _tags(doc, "3")["suggested"] == [("del", "cat", "removed")]
    texts = [e.text for e in doc.find("ins", "worst") + doc.find("del", "worst")]
    assert "+dog" in texts and "−cat" in texts and f"−{HOSTILE}" in texts


def test_worst_is_cut_to_max_examples_and_may_be_empty(data):
    doc = parse(render_html(data, max_examples=2))
    assert [r.attrs["data-rank"] for r in doc.with_attr("data-rank", "tr")] == ["1", "2"]
    doc = parse(render_html(dataclasses.replace(data, worst=())))
    assert not doc.with_attr("data-rank") and doc.find("section", id="worst")


# ---------------------------------------------------------------- change since previous run


def test_change_with_previous_run(doc, data, change):
    values = {e.attrs["data-field"]: e.attrs["data-value"]
              for e in doc.with_attr("data-field", section="change") if "data-class" not in
              e.attrs and e.tag != "tr"}
    assert values["previous_health_score"] == repr(0.8102)
    assert values["overall_health_score"] == repr(0.8017412)
    assert values["health_score_change"] == repr(0.8017412 - 0.8102)
    assert values["previous_num_label_issues"] == "759"
    assert values["num_label_issues"] == "793"
    assert values["num_label_issues_change"] == "34"
    assert values["new_issues"] == "41" and values["resolved_issues"] == "7"
    text = _section_text(doc, "change")
    assert "2026-11-26" in text and "−0.0085" in text and "+34" in text

    rows = doc.with_attr("data-class", "tr", "change")
    assert [r.attrs["data-class"] for r in rows] == [HOSTILE, "cat"]
    cells = doc.with_attr("data-field", "td", "change")[-12:]
    got = [(c.attrs["data-field"], c.attrs["data-value"]) for c in cells]
    assert got == [("previous_label_noise", repr(0.21)), ("label_noise", repr(0.25)),
                   ("change", repr(0.25 - 0.21)),
                   ("previous_inverse_label_noise", repr(0.5)),
                   ("inverse_label_noise", repr(0.5)), ("inverse_change", repr(0.0)),
                   ("previous_label_noise", repr(0.3)), ("label_noise", repr(0.1)),
                   ("change", repr(0.1 - 0.3)),
                   ("previous_inverse_label_noise", repr(0.0625)),
                   ("inverse_label_noise", repr(0.125)), ("inverse_change", repr(0.0625))]
    assert "+0.0400" in rows[0].text and "−0.2000" in rows[1].text
    assert "+0.0625" in rows[1].text


def test_change_without_previous_run(data):
    doc = parse(render_html(dataclasses.replace(data, change=Change())))
    assert ("No previous run of this dataset to compare with."
            in _section_text(doc, "change"))
    assert not doc.with_attr("data-field", section="change")


def test_change_with_partial_previous_run(data):
    partial = Change(previous_run_date="2026-11-20")
    doc = parse(render_html(dataclasses.replace(data, change=partial)))
    values = {e.attrs["data-field"]: e.attrs["data-value"]
              for e in doc.with_attr("data-field", section="change")}
    assert values["previous_health_score"] == "" and values["health_score_change"] == ""
    assert "new_issues" not in values


# ---------------------------------------------------------------- escaping


def test_hostile_text_is_escaped_and_parses_back_exactly(data):
    document = render_html(data)
    for raw in (HOSTILE, SCRIPT_ID, data.dataset, "<dog>", "<cannot judge>", "`and on`"):
        assert raw not in document
    doc = parse(document)
    assert {b.attrs["data-class"] for b in doc.find("rect", "noise")
            if "data-class" in b.attrs} == {c.class_name for c in data.classes}
    assert doc.find("tr", "joint", data_class=HOSTILE)
    assert doc.find("tr", "worst", data_id=SCRIPT_ID)
    assert doc.find("tr", "worst", data_id=URL_ID)  # "://" is broken by an entity, not lost
    assert any(e.text == f"{HOSTILE} — label noise: 0.2500" for e in doc.find("title"))
    assert doc.find("h1")[0].text == f"Label audit: {data.dataset}"


# ---------------------------------------------------------------- edge cases


def test_all_zero_noise_still_emits_every_bar(data, classes):
    quiet = tuple(dataclasses.replace(c, label_noise=0.0, inverse_label_noise=0.0)
                  for c in classes)
    doc = parse(render_html(dataclasses.replace(data, classes=quiet)))
    bars = doc.with_attr("data-series", "rect", "noise")
    assert len(bars) == 10
    assert {b.attrs["data-value"] for b in bars} == {"0.0"}
    assert {float(b.attrs["width"]) for b in bars} == {0.0}
    assert [b.attrs["data-class"] for b in _bars(doc, "label_noise")] == [
        c.class_name for c in classes]  # ties: class_index order


def test_empty_report_renders(data):
    empty = dataclasses.replace(
        data, classes=(), num_classes=0, num_examples=0, num_label_issues=0, worst=(),
        histogram=ScoreHistogram((0.0,), (), (), None), change=Change())
    doc = parse(render_html(empty))
    assert [e.attrs["id"] for e in doc.find("section")] == SECTIONS
    assert not doc.with_attr("data-series")


def test_inputs_are_not_mutated(data):
    before = repr(data)
    render_html(data, max_classes=1, max_examples=1)
    assert repr(data) == before


def test_negative_limits_are_refused(data):
    with pytest.raises(ValueError):
        render_html(data, max_classes=-1)


# ---------------------------------------------------------------- layout in a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
#: measured by the browser after layout: what overflows the 1280 px window, and which ids wrap
_MEASURE = """<script>
addEventListener('load', () => {
  const joint = document.querySelector('#joint table');
  const ids = [...document.querySelectorAll('td.id')].map(td => {
    const range = document.createRange(); range.selectNodeContents(td);
    return range.getClientRects().length; });
  document.body.setAttribute('data-layout', JSON.stringify({
    viewport: document.documentElement.clientWidth,
    joint_right: joint.getBoundingClientRect().right,
    joint_scroll: joint.parentElement.scrollWidth - joint.parentElement.clientWidth,
    id_lines: ids}));
});
</script>"""


def browser_layout(document: str, directory: Path) -> dict[str, object]:
    """The report's layout in headless Chromium at 1280 px (raises when there is none)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed (.ci/run installs it)"
    page = directory / "measured.html"
    page.write_text(document.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={directory / 'profile'}",
                          "--window-size=1280,2600", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return json.loads(html.unescape(parse(dom.stdout).find("body")[0].attrs["data-layout"]))


@pytest.mark.slow
def test_at_1280_px_the_joint_table_fits_and_ids_do_not_wrap(data, tmp_path):
    many = tuple(_class(i, f"a rather long class name {i}", 0.01, 0.02,
                        note="annotated on every example: nothing to compare against; "
                             "not judged" if i == 3 else None) for i in range(30))
    worst = (WorstExample(1, "3f2b9c1e-5d4a-4e8b-9f00-1234567890ab", 0.01, ("cat",), (),
                          "cat unlikely"),
             WorstExample(2, "YAL001C-with-a-suffix", 0.02, ("cat",), (), "cat unlikely"))
    document = render_html(dataclasses.replace(data, classes=many, num_classes=30,
                                               worst=worst))
    layout = browser_layout(document, tmp_path)
    assert layout["viewport"] == 1280
    assert layout["joint_scroll"] == 0 and layout["joint_right"] <= 1280
    assert layout["id_lines"] == [1, 1]

"""`labelqa report`: one self-contained HTML file whose numbers are the output tables'."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from labelqa import api
from labelqa.cli import main
from labelqa.report.gather import HISTOGRAM_BINS
from tests.conftest import RUN_DATES
from tests.test_report_render import Collector, browser_layout, parse

GENERATED_AT = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.timezone.utc)


def _partition(spark, output: Path, table: str, run_date: str):
    return (spark.read.parquet(str(output / table))
            .filter(f"dataset = 'demo' AND run_date = '{run_date}'").toPandas())


@pytest.fixture(scope="module")
def report(spark, two_runs, tmp_path_factory) -> tuple[Path, Collector, str]:
    output, _ = two_runs
    path = tmp_path_factory.mktemp("report") / "report.html"
    written = api.write_report(spark, str(output), "demo", None, str(path),
                               clock=lambda: GENERATED_AT)
    assert written == str(path)
    document = path.read_text()
    return path, parse(document), document


@pytest.fixture(scope="module")
def tables(spark, two_runs):
    output, _ = two_runs
    return {name: _partition(spark, output, name, RUN_DATES[1])
            for name in ("examples", "classes", "summary")}


def _fields(doc: Collector, section: str) -> dict[str, str]:
    return {e.attrs["data-field"]: e.attrs["data-value"]
            for e in doc.with_attr("data-field", section=section)
            if "data-class" not in e.attrs and e.tag != "tr"}


def test_the_report_is_one_self_contained_file(report):
    _, doc, document = report
    assert document.startswith("<!DOCTYPE html>")
    for forbidden in ("http://", "https://", "<script", "<link", "src="):
        assert forbidden not in document
    assert [e.attrs["id"] for e in doc.find("section")] == [
        "summary", "noise", "scores", "joint", "worst", "change"]
    assert len(doc.find("svg")) == 2
    assert GENERATED_AT.isoformat(timespec="seconds") in document


def test_summary_numbers_are_the_summary_table(report, tables):
    _, doc, _ = report
    summary = tables["summary"].iloc[0]
    assert _fields(doc, "summary") == {
        "num_examples": "1500", "num_classes": "10",
        "num_label_issues": str(summary["num_label_issues"]),
        "overall_health_score": repr(float(summary["overall_health_score"])),
        "rows_quarantined": "0", "separation_auc": repr(float(summary["separation_auc"]))}
    assert not doc.find("p", "summary", id="weak-separation")  # the sample's model is good


def test_noise_chart_is_the_classes_table(report, tables):
    _, doc, _ = report
    classes = tables["classes"]
    for series in ("label_noise", "inverse_label_noise"):
        bars = [e for e in doc.with_attr("data-series", "rect", "noise")
                if e.attrs["data-series"] == series]
        got = {bar.attrs["data-class"]: bar.attrs["data-value"] for bar in bars}
        assert got == {name: repr(float(value))
                       for name, value in zip(classes["class_name"], classes[series])}


def test_confident_joint_table_is_the_classes_table(report, tables):
    _, doc, _ = report
    classes = tables["classes"].sort_values("class_index")
    rows = doc.with_attr("data-class", "tr", "joint")
    assert [r.attrs["data-class"] for r in rows] == list(classes["class_name"])
    cells = doc.with_attr("data-field", "td", "joint")
    fields = ("num_given", "threshold_given", "threshold_not_given", "cj_given_given",
              "cj_given_not", "cj_not_given", "cj_not_not", "label_issues",
              "inverse_label_issues", "separation_auc")
    got = [(c.attrs["data-field"], c.attrs["data-value"]) for c in cells]
    expected = [(f, repr(float(row[f])) if isinstance(row[f], float) else str(row[f]))
                for _, row in classes.iterrows() for f in fields]
    assert got == expected


def test_score_histogram_counts_every_example(report, tables):
    _, doc, _ = report
    examples = tables["examples"]
    scores = examples["label_quality_score"].to_numpy()
    bins = np.minimum(np.floor(scores * HISTOGRAM_BINS).astype(int), HISTOGRAM_BINS - 1)
    flagged = examples["is_label_issue"].to_numpy()
    bars = doc.with_attr("data-bin", "rect", "scores")
    counts = {(int(b.attrs["data-bin"]), b.attrs["data-series"]): int(b.attrs["data-value"])
              for b in bars}
    for index in range(HISTOGRAM_BINS):
        assert counts[(index, "flagged")] == int(np.sum(flagged & (bins == index)))
        assert counts[(index, "not_flagged")] == int(np.sum(~flagged & (bins == index)))
    cutoff = doc.with_attr("data-cutoff", "line", "scores")
    assert [c.attrs["data-cutoff"] for c in cutoff] == [repr(float(scores[flagged].max()))]


def test_worst_examples_with_tags_and_explanations(report, tables):
    _, doc, _ = report
    examples = tables["examples"]
    names = list(tables["classes"].sort_values("class_index")["class_name"])
    worst = examples[examples["issue_rank"] <= 25].sort_values("issue_rank")
    rows = doc.with_attr("data-rank", "tr", "worst")
    assert [(r.attrs["data-rank"], r.attrs["data-id"], r.attrs["data-score"]) for r in rows] \
        == [(str(int(r.issue_rank)), str(r.id), repr(r.label_quality_score))
            for r in worst.itertuples()]
    for row, example in zip(rows, worst.itertuples()):
        assert example.explanation["text"] in row.text
        suggested = {names[i] for i in example.suggested_labels}
        given = {names[i] for i in example.given_labels}
        for tag in suggested - given:
            assert f"+{tag}" in row.text
        for tag in given - suggested:
            assert f"−{tag}" in row.text


def test_change_since_the_previous_run(spark, report, two_runs, tables):
    output, reports = two_runs
    _, doc, document = report
    now = tables["examples"].set_index("id")["is_label_issue"]
    before = _partition(spark, output, "examples", RUN_DATES[0]).set_index("id")[
        "is_label_issue"]
    both = now.to_frame("now").join(before.to_frame("before"), how="outer").fillna(False)
    values = _fields(doc, "change")
    assert values["previous_health_score"] == repr(reports[0].overall_health_score)
    assert values["overall_health_score"] == repr(reports[1].overall_health_score)
    assert values["previous_num_label_issues"] == str(reports[0].num_label_issues)
    assert values["new_issues"] == str(int((both["now"] & ~both["before"]).sum()))
    assert values["resolved_issues"] == str(int((~both["now"] & both["before"]).sum()))
    assert RUN_DATES[0] in document


def test_report_cli_writes_next_to_the_tables_and_for_a_given_date(spark, two_runs, capsys):
    output, _ = two_runs
    code = main(["report", "--output", str(output), "--dataset", "demo", "--run-date",
                 RUN_DATES[0], "--max-examples", "5", "--master", "local[2,2]"])
    assert code == 0
    path = output / "_reports" / "dataset=demo" / f"run_date={RUN_DATES[0]}.html"
    assert f"report: {path}" in capsys.readouterr().out
    doc = parse(path.read_text())
    assert len(doc.with_attr("data-rank", "tr", "worst")) == 5
    assert "No previous run of this dataset to compare with." in path.read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["--dataset", "nope"], "summary.run_date: no run of dataset 'nope' under"),
    (["--dataset", "demo", "--run-date", "2026-01-01"],
     "summary.run_date: no run of dataset 'demo' on 2026-01-01 under"),
    (["--dataset", "demo", "--max-examples", "0"], "'0' is not a positive integer"),
])
def test_report_cli_errors(spark, two_runs, capsys, argv, message):
    output, _ = two_runs
    code = main(["report", "--output", str(output), *argv, "--master", "local[2,2]"])
    assert code == 2
    assert message in capsys.readouterr().err


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    """The real browser: the DOM it builds has every section and chart, and a screenshot is
    saved (to $LABELQA_SCREENSHOT_DIR when set; CI keeps it as an artifact)."""
    path, _, _ = report
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed (.ci/run installs it)"
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", path.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = parse(dom.stdout)
    assert [e.attrs["id"] for e in rendered.find("section")] == [
        "summary", "noise", "scores", "joint", "worst", "change"]
    assert len(rendered.find("svg")) == 2
    assert len(rendered.with_attr("data-bin", "rect")) == 2 * HISTOGRAM_BINS
    screenshot = Path(os.environ.get("LABELQA_SCREENSHOT_DIR", tmp_path)) / "report.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = subprocess.run([*common, f"--screenshot={screenshot}", "--window-size=1280,2600",
                           path.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 2600)
    assert len(png) > 50_000  # a rendered page, not a blank one
    # the confident joint's last column is inside the 1280 px window, no id is broken
    layout = browser_layout(path.read_text(encoding="utf-8"), tmp_path)
    assert layout["joint_scroll"] == 0 and layout["joint_right"] <= layout["viewport"] == 1280
    assert layout["id_lines"] and set(layout["id_lines"]) == {1}

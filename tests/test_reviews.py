"""`labelqa reviews`: verdicts checked against the run, stored and merged; precision computed
by hand; the runs history (old tables without the new columns too); the report section; the
demo's known errors give the demo's precision."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from labelqa.api import RunContext, run_audit_job
from labelqa.cli import main
from labelqa.config import load_config
from labelqa.report.model import PrecisionRow, Reviews
from labelqa.report.render import render_html
from labelqa.sample import generate, write_sample
from tests.test_report_render import parse

NAMES = ("cat", "dog", "sky", "car")
RUN_DATE = "2026-12-03"
FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4"]
Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval, written out."""
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("reviews")
    sample = generate(300, len(NAMES), 21)
    write_sample(sample, str(root / "labels.parquet"), str(root / "predictions.parquet"))
    run_audit_job(spark, str(root / "labels.parquet"), str(root / "predictions.parquet"),
                  str(root / "out"), load_config(None, [f"classes={list(NAMES)}"]),
                  RunContext("r", RUN_DATE, "run-r"))
    return root


@pytest.fixture
def output(run, tmp_path):
    """A fresh copy of the run's outputs for each test (reviews change them)."""
    shutil.copytree(run / "out", tmp_path / "out")
    return tmp_path / "out"


def _part(output, table) -> pd.DataFrame:
    return pd.read_parquet(output / table / "dataset=r" / f"run_date={RUN_DATE}")


def _pairs(output) -> pd.DataFrame:
    issues = _part(output, "class_issues").merge(_part(output, "examples")[["id", "issue_rank"]],
                                                 on="id")
    return issues.sort_values(["issue_rank", "id", "class_index"]).reset_index(drop=True)


def _reviews(output, path, *extra):
    return main(["reviews", "--output", str(output), "--dataset", "r", "--reviews", str(path),
                 *FAST, *extra])


def test_precision_from_a_csv_by_hand(spark, output, tmp_path, capsys):
    pairs = _pairs(output)
    num_flagged = int(_part(output, "examples").is_label_issue.sum())
    chosen = pairs.iloc[[0, 1, 2, len(pairs) // 2, len(pairs) - 1]]
    verdicts = ["confirmed", "confirmed", "rejected", "confirmed", "rejected"]
    lines = ["id,class,verdict,reviewer"]
    for number, ((_, pair), verdict) in enumerate(zip(chosen.iterrows(), verdicts)):
        # classes by name and by index
        named = pair.class_name if number % 2 else str(pair.class_index)
        lines.append(f"{pair.id},{named},{verdict},ann{number}")
    path = tmp_path / "verdicts.csv"
    path.write_text("\n".join(lines) + "\n")
    assert _reviews(output, path) == 0
    printed = capsys.readouterr().out

    low, high = wilson(3, 5)
    expected = [{"scope": "overall", "key": None, "reviewed": 5, "confirmed": 3,
                 "precision": 3 / 5, "precision_low": low, "precision_high": high}]
    by_class: dict[int, list[str]] = {}
    by_decile: dict[int, list[str]] = {}
    for (_, pair), verdict in zip(chosen.iterrows(), verdicts):
        by_class.setdefault(int(pair.class_index), []).append(verdict)
        by_decile.setdefault(math.ceil(10 * pair.issue_rank / num_flagged), []).append(verdict)
    for scope, groups, key in (("class", by_class, lambda k: NAMES[k]),
                               ("decile", by_decile, str)):
        for group in sorted(groups):
            n, k = len(groups[group]), groups[group].count("confirmed")
            lo, hi = wilson(k, n)
            expected.append({"scope": scope, "key": key(group), "reviewed": n, "confirmed": k,
                             "precision": k / n, "precision_low": lo, "precision_high": hi})
    found = _part(output, "review_precision").replace({np.nan: None}).to_dict("records")
    assert [{k: v for k, v in row.items() if k not in ("precision_low", "precision_high")}
            for row in found] == [{k: v for k, v in row.items()
                                   if k not in ("precision_low", "precision_high")}
                                  for row in expected]
    for row, want in zip(found, expected):
        assert row["precision_low"] == pytest.approx(want["precision_low"], abs=1e-12)
        assert row["precision_high"] == pytest.approx(want["precision_high"], abs=1e-12)
    assert round(low, 4) == 0.2307 and round(high, 4) == 0.8824  # 3 of 5, any textbook

    stored = _part(output, "reviews").sort_values(["issue_rank", "id", "class_index"])
    assert stored.drop(columns=["reviewed_at"]).reset_index(drop=True).to_dict("records") == [
        {"id": int(pair.id), "class_index": int(pair.class_index), "class_name": pair.class_name,
         "verdict": verdict, "flagged": True, "given": bool(pair.given),
         "issue_rank": int(pair.issue_rank), "reviewer": f"ann{number}", "source": "csv"}
        for number, ((_, pair), verdict) in enumerate(zip(chosen.iterrows(), verdicts))]
    assert stored.reviewed_at.isna().all()
    assert (f"precision of the findings: 0.6000 (3 of 5 confirmed; 95% interval "
            f"{low:.4f}-{high:.4f})") in printed
    runs = spark.read.parquet(str(output / "runs")).filter("run_id = 'run-r'").first()
    assert (runs["reviewed_pairs"], runs["confirmed_pairs"], runs["review_precision"]) == \
        (5, 3, 0.6)


def test_a_later_file_replaces_the_same_pairs_and_keeps_the_others(spark, output, tmp_path):
    pairs = _pairs(output)
    first, second, third = (pairs.iloc[i] for i in range(3))
    path = tmp_path / "a.csv"
    path.write_text(f"id,class,verdict\n{first.id},{first.class_name},rejected\n"
                    f"{second.id},{second.class_name},rejected\n")
    assert _reviews(output, path) == 0
    path.write_text(f"id,class,verdict\n{second.id},{second.class_name},confirmed\n"
                    f"{third.id},{third.class_name},confirmed\n")
    assert _reviews(output, path) == 0
    stored = _part(output, "reviews")
    assert sorted(zip(stored.id, stored.class_index, stored.verdict)) == sorted([
        (first.id, first.class_index, "rejected"), (second.id, second.class_index, "confirmed"),
        (third.id, third.class_index, "confirmed")])
    overall = _part(output, "review_precision").iloc[0]
    assert (overall.reviewed, overall.confirmed, overall.precision) == (3, 2, 2 / 3)


def _not_a_finding(output) -> tuple[int, str]:
    issues = set(zip(_part(output, "class_issues").id, _part(output, "class_issues").class_index))
    ident = next(int(i) for i in _part(output, "examples").id if (i, 1) not in issues)
    return ident, NAMES[1]


@pytest.mark.parametrize(("row", "message"), [
    ("{pair.id},{pair.class_name},maybe",
     "reviews.verdict: line 3: verdict 'maybe' is not one of confirmed, rejected"),
    ("{pair.id},dgo,confirmed",
     "reviews.class: line 3: class 'dgo' is not one of the run's classes (a name or an index "
     "0..3)"),
    ("abc,cat,confirmed",
     "reviews.id: line 3: id 'abc' is not an integer (the run's ids are bigint)"),
    ("{other[0]},{other[1]},rejected",
     "reviews: line 3: (id {other[0]}, class 'dog') is not a finding of the run (class_issues); "
     "1 such verdict(s), none stored (example id: {other[0]})"),
])
def test_a_bad_verdict_names_its_line_and_nothing_is_stored(output, tmp_path, capsys, row,
                                                            message):
    pair = _pairs(output).iloc[0]
    other = _not_a_finding(output)
    path = tmp_path / "bad.csv"
    path.write_text(f"id,class,verdict\n{pair.id},{pair.class_name},confirmed\n"
                    + row.format(pair=pair, other=other) + "\n")
    assert _reviews(output, path) == 2
    assert f"labelqa: error: {message.format(other=other)}" in capsys.readouterr().err
    assert not (output / "reviews").exists() and not (output / "review_precision").exists()


def test_format_from_the_extension_or_given(output, tmp_path, capsys):
    path = tmp_path / "verdicts.txt"
    path.write_text("id,class,verdict\n")
    assert _reviews(output, path) == 2
    assert "cannot tell the format of" in capsys.readouterr().err
    assert _reviews(output, path, "--format", "csv") == 0
    assert "0 verdict(s) read" in capsys.readouterr().out


def test_a_runs_table_written_before_the_new_columns_still_reads(spark, output, tmp_path):
    runs_dir = output / "runs" / "dataset=r"
    old = spark.read.parquet(str(runs_dir)).drop("reviewed_pairs", "confirmed_pairs",
                                                 "review_precision")
    old.write.parquet(str(tmp_path / "old-runs"))
    shutil.rmtree(runs_dir)
    shutil.move(tmp_path / "old-runs", runs_dir)
    old = pq.read_table(str(runs_dir))
    assert "review_precision" not in old.column_names
    pair = _pairs(output).iloc[0]
    path = tmp_path / "v.csv"
    path.write_text(f"id,class,verdict\n{pair.id},{pair.class_name},confirmed\n")
    assert _reviews(output, path) == 0
    rows = pq.read_table(str(runs_dir)).to_pylist()
    assert len(rows) == 1
    assert (rows[0]["run_id"], rows[0]["reviewed_pairs"], rows[0]["confirmed_pairs"],
            rows[0]["review_precision"]) == ("run-r", 1, 1, 1.0)
    assert rows[0]["num_examples"] == old.to_pylist()[0]["num_examples"]


def test_the_report_shows_the_verdicts(spark, output, tmp_path):
    from labelqa.report.gather import gather_report

    pairs = _pairs(output)
    path = tmp_path / "v.csv"
    path.write_text("id,class,verdict\n" + "".join(
        f"{p.id},{p.class_name},{'confirmed' if i % 3 else 'rejected'}\n"
        for i, (_, p) in enumerate(pairs.head(6).iterrows())))
    assert _reviews(output, path) == 0
    data = gather_report(spark, str(output), "r", None, "2026-12-03T00:00:00")
    precision = _part(output, "review_precision").replace({np.nan: None})
    assert data.reviews == Reviews(4, 2, 0, tuple(PrecisionRow(**row) for row in
                                                  precision.to_dict("records")))
    doc = parse(render_html(data))
    assert [e.attrs["id"] for e in doc.find("section")][:2] == ["summary", "reviews"]
    assert doc.find("h2", "reviews")[0].text == "Reviewers' verdicts"
    overall = doc.find("tr", "reviews", data_scope="overall")[0]
    cells = {e.attrs["data-field"]: e.attrs["data-value"]
             for e in doc.with_attr("data-field", "td", "reviews")
             if e.ancestors and e in doc.elements[doc.elements.index(overall):][:7]}
    assert cells == {"reviewed": "6", "confirmed": "4", "precision": repr(4 / 6),
                     "precision_low": repr(wilson(4, 6)[0]) if False else
                     repr(float(precision.precision_low[0])),
                     "precision_high": repr(float(precision.precision_high[0]))}
    stats = {e.attrs["data-field"]: e.attrs["data-value"]
             for e in doc.with_attr("data-field", "span", "reviews")}
    assert stats == {"review_precision": repr(4 / 6), "confirmed_pairs": "4",
                     "rejected_pairs": "2", "corrected_pairs": "0"}
    without = parse(render_html(dataclasses.replace(data, reviews=None)))
    assert not without.find("section", id="reviews")


def test_a_label_studio_export(spark, output, tmp_path, capsys):
    pytest.importorskip("labelqa.act.labelstudio")
    pairs = _pairs(output)
    examples = _part(output, "examples").set_index("id")
    first = pairs.iloc[0]
    given = [NAMES[k] for k in examples.given_labels[first.id]]
    flagged = pairs[pairs.id == first.id]
    suggested = [NAMES[k] for k in examples.suggested_labels[first.id]]
    # the reviewer takes the suggestion and also toggles one class labelqa did not flag
    other = next(n for k, n in enumerate(NAMES) if k not in set(flagged.class_index))
    final = sorted(set(suggested) ^ {other}, key=NAMES.index)
    tasks = [
        {"data": {"labelqa_id": str(first.id), "given_tags": given,
                  "suggested_tags": suggested,
                  "flagged": [{"class_name": r.class_name, "class_index": int(r.class_index),
                               "given": bool(r.given)} for _, r in flagged.iterrows()]},
         "annotations": [{"result": [{"from_name": "tags", "to_name": "text",
                                      "type": "choices", "value": {"choices": final}}],
                          "completed_by": 7, "updated_at": "2026-12-04T10:00:00Z"}]},
        {"data": {"labelqa_id": str(pairs.iloc[-1].id), "given_tags": [], "suggested_tags": [],
                  "flagged": []}, "annotations": []}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    assert _reviews(output, path) == 0
    assert "1 Label Studio task(s) without an annotation skipped" in capsys.readouterr().out
    stored = _part(output, "reviews").sort_values("class_index")
    expected = sorted([(NAMES[k], "confirmed", True) for k in flagged.class_index]
                      + [(other, "corrected", False)], key=lambda r: NAMES.index(r[0]))
    assert list(zip(stored.class_name, stored.verdict, stored.flagged)) == expected
    assert set(stored.source) == {"label-studio"} and set(stored.reviewer) == {"7"}
    overall = _part(output, "review_precision").iloc[0]
    assert (overall.reviewed, overall.confirmed) == (len(flagged), len(flagged))


def test_on_the_demo_data_the_measured_precision_is_the_demos(spark, tmp_path, capsys):
    """Simulated reviewers who know the truth: confirmed iff the pair was injected."""
    from labelqa.demo import PREVALENCE, SEED, TAGS

    sample = generate(800, len(TAGS), SEED, prevalence=PREVALENCE, missing_rate=0.05,
                      extra_rate=0.01, dtype=np.float32, separation=2.5, model_noise=1.2)
    write_sample(sample, str(tmp_path / "labels"), str(tmp_path / "predictions"))
    output = tmp_path / "out"
    run_audit_job(spark, str(tmp_path / "labels"), str(tmp_path / "predictions"), str(output),
                  load_config(None, [f"classes={list(TAGS)}"]),
                  RunContext("demo", RUN_DATE, "demo-run"))
    issues = pd.read_parquet(output / "class_issues" / "dataset=demo")
    rows, classes = np.nonzero(sample.injected)
    injected = set(zip(sample.ids[rows].tolist(), classes.tolist()))
    caught = sum((int(i), int(k)) in injected for i, k in zip(issues.id, issues.class_index))
    demo_precision = caught / len(issues)  # the demo's way: caught / found
    assert 0 < caught < len(issues)
    path = tmp_path / "verdicts.csv"
    path.write_text("id,class,verdict\n" + "".join(
        f"{i},{k},{'confirmed' if (int(i), int(k)) in injected else 'rejected'}\n"
        for i, k in zip(issues.id, issues.class_index)))
    assert main(["reviews", "--output", str(output), "--dataset", "demo", "--reviews",
                 str(path), *FAST]) == 0
    overall = pd.read_parquet(output / "review_precision" / "dataset=demo").iloc[0]
    assert overall.scope == "overall"
    assert (overall.reviewed, overall.confirmed) == (len(issues), caught)
    assert overall.precision == demo_precision

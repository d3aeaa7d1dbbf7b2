"""`labelqa demo` runs the whole audit and finds the injected errors; reviewers who know the
truth measure the demo's own precision."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelqa.cli import main
from labelqa.demo import run_demo


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = run_demo(str(tmp_path_factory.mktemp("demo") / "demo"), "local[2,2]")
    return result, printed.getvalue()


def test_demo_finds_the_injected_errors(demo):
    result, printed = demo
    assert result["injected"] > 500
    assert result["precision"] > 0.8 and result["recall"] > 0.8
    assert f"caught {result['caught']}: precision" in printed
    assert "the ten worst examples:" in printed
    assert printed.count(" -> [") == 10
    output = Path(result["output"])
    assert (output / "_manifests/dataset=demo").is_dir()
    report = output / "_reports/dataset=demo" / f"run_date={result['report'].run_date}.html"
    assert result["html_report"] == str(report)
    assert f"report:   {report} (open it in a browser)" in printed
    assert '<section id="worst">' in report.read_text()
    assert (f"  labelqa queue --output {output} --dataset demo --budget 50 --min-per-class 2 "
            f"--to {output}/queue.csv") in printed


def test_reviewers_who_know_the_truth_measure_the_demos_precision(demo, tmp_path, capsys):
    """A verdict on every flagged tag of the demo run, confirmed iff the error was injected:
    `labelqa reviews` measures exactly the precision the demo prints."""
    result, _ = demo
    sample, run_date = result["sample"], result["report"].run_date
    rows, classes = np.nonzero(sample.injected)
    injected = set(zip(sample.ids[rows].tolist(), classes.tolist()))
    issues = pd.read_parquet(Path(result["output"]) / "class_issues" / "dataset=demo"
                             / f"run_date={run_date}")
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text("id,class,verdict\n" + "".join(
        f"{i},{k},{'confirmed' if (i, k) in injected else 'rejected'}\n"
        for i, k in zip(issues["id"].tolist(), issues["class_index"].tolist())))
    assert main(["reviews", "--output", result["output"], "--dataset", "demo",
                 "--run-date", run_date, "--reviews", str(verdicts),
                 "--master", "local[2,2]"]) == 0
    assert f"precision of the findings: {result['precision']:.4f} ({result['caught']} of " \
           f"{result['found']} confirmed" in capsys.readouterr().out
    overall = pd.read_parquet(Path(result["output"]) / "review_precision" / "dataset=demo")
    overall = overall[overall["scope"] == "overall"].iloc[0]
    assert (overall["reviewed"], overall["confirmed"]) == (result["found"], result["caught"])
    assert overall["precision"] == result["precision"]

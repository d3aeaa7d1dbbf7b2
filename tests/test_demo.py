"""`labelqa demo` runs the whole audit and finds the injected errors."""

from __future__ import annotations

from labelqa.demo import run_demo


def test_demo_finds_the_injected_errors(spark, tmp_path, capsys):
    result = run_demo(str(tmp_path / "demo"), "local[2,2]")
    printed = capsys.readouterr().out
    assert result["injected"] > 500
    assert result["precision"] > 0.8 and result["recall"] > 0.8
    assert f"caught {result['caught']}: precision" in printed
    assert "the ten worst examples:" in printed
    assert printed.count(" -> [") == 10
    assert (tmp_path / "demo/_manifests/dataset=demo").is_dir()
    report = tmp_path / "demo/_reports/dataset=demo" / f"run_date={result['report'].run_date}.html"
    assert result["html_report"] == str(report)
    assert f"report:   {report} (open it in a browser)" in printed
    assert '<section id="worst">' in report.read_text()

"""Running in production: the manifest last, quality gates, run history, failed reruns, logs."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import pytest

from labelqa import api
from labelqa.api import RunContext, run_audit_job
from labelqa.cli import main
from labelqa.config import load_config
from labelqa.errors import GateFailed
from labelqa.sample import generate, write_sample
from labelqa.spark.audit import TaskWrittenTable

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("prod")
    write_sample(generate(500, 5, 51), str(root / "l.parquet"), str(root / "p.parquet"))
    write_sample(generate(500, 5, 52, missing_rate=0.15), str(root / "l2.parquet"),
                 str(root / "p2.parquet"))
    return root


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_gate_failure_exits_3_with_outputs_and_a_gate_failed_manifest(spark, inputs, tmp_path,
                                                                      capsys):
    code = main(["audit", "--labels", str(inputs / "l.parquet"), "--predictions",
                 str(inputs / "p.parquet"), "--output", str(tmp_path), "--dataset", "g",
                 "--run-date", "2026-11-03", "--set", "gates.min_health_score=0.99",
                 "--set", "gates.max_class_label_noise=0.001", *FAST])
    captured = capsys.readouterr()
    assert code == 3
    assert "labelqa: error: quality gate failed: health score" in captured.err
    assert "gates.min_health_score=0.99" in captured.err
    assert "gates.max_class_label_noise=0.001" in captured.err
    manifest = json.loads((tmp_path / "_manifests/dataset=g/run_date=2026-11-03.json")
                          .read_text())
    assert manifest["status"] == "gate_failed" and len(manifest["gates_failed"]) == 2
    for table in ("examples", "class_issues", "classes", "summary"):
        assert list((tmp_path / table / "dataset=g/run_date=2026-11-03").glob("*.parquet"))
    runs = spark.read.parquet(str(tmp_path / "runs")).collect()
    assert [r["status"] for r in runs] == ["gate_failed"]


def test_passing_gates_and_history_across_runs(spark, inputs, tmp_path, capsys):
    config = load_config(None, ["gates.max_issue_fraction=0.9", "gates.min_health_score=0.1"])
    first = run_audit_job(spark, str(inputs / "l.parquet"), str(inputs / "p.parquet"),
                          str(tmp_path), config, RunContext("h", "2026-11-01", "first"))
    assert first.status == "succeeded"
    assert first.comparison_text == "no previous run of this dataset to compare with"
    second = run_audit_job(spark, str(inputs / "l2.parquet"), str(inputs / "p2.parquet"),
                           str(tmp_path), config, RunContext("h", "2026-11-02", "second"))
    assert second.comparison_text.startswith(
        f"compared with 2026-11-01: health {first.overall_health_score:.4f} -> "
        f"{second.overall_health_score:.4f}")
    runs = spark.read.parquet(str(tmp_path / "runs")).orderBy("run_date").collect()
    assert [r["run_id"] for r in runs] == ["first", "second"]
    assert runs[1]["previous_run_date"] == "2026-11-01"
    assert runs[1]["previous_num_label_issues"] == first.num_label_issues
    changes = runs[1]["class_noise_changes"]
    assert 0 < len(changes) <= 5
    # classes move by label noise and inverse label noise (forgotten tags) together
    moved = [abs(c["change"]) + abs(c["inverse_change"]) for c in changes]
    assert moved == sorted(moved, reverse=True)
    for c in changes:
        assert c["inverse_change"] == c["inverse_label_noise"] - c["previous_inverse_label_noise"]
    assert any(c["inverse_change"] != 0 for c in changes)
    manifest = json.loads(Path(second.manifest).read_text())
    assert manifest["comparison"]["previous_run_date"] == "2026-11-01"
    assert manifest["comparison"]["previous_run_id"] == "first"

    # a rerun of the same date compares with the run it replaces, not with nothing
    rerun = run_audit_job(spark, str(inputs / "l.parquet"), str(inputs / "p.parquet"),
                          str(tmp_path), config, RunContext("h", "2026-11-02", "rerun"))
    assert rerun.comparison_text.startswith(
        "compared with the run of 2026-11-02 this rerun replaces: health "
        f"{second.overall_health_score:.4f} -> {rerun.overall_health_score:.4f}")
    runs = spark.read.parquet(str(tmp_path / "runs")).orderBy("finished_at").collect()
    assert runs[2]["previous_run_date"] == "2026-11-02"
    assert runs[2]["previous_num_label_issues"] == second.num_label_issues
    assert set(manifest["timings"]["stages_seconds"]) >= {"read and check inputs", "audit",
                                                         "publish"}


def test_failed_rerun_leaves_the_previous_partition_and_manifest(spark, inputs, tmp_path,
                                                                 monkeypatch):
    config = load_config(None)
    run_audit_job(spark, str(inputs / "l.parquet"), str(inputs / "p.parquet"), str(tmp_path),
                  config, RunContext("f", "2026-11-01", "good"))
    before = _snapshot(tmp_path)

    def explode(*_):
        raise RuntimeError("injected failure after the tables were staged")

    monkeypatch.setattr(api, "evaluate_gates", explode)
    with pytest.raises(RuntimeError, match="injected failure"):
        run_audit_job(spark, str(inputs / "l2.parquet"), str(inputs / "p2.parquet"),
                      str(tmp_path), config, RunContext("f", "2026-11-01", "bad"))
    assert _snapshot(tmp_path) == before  # nothing visible changed, no staging left behind
    assert not (tmp_path / "_staging").exists() or not any((tmp_path / "_staging").iterdir())


def test_the_same_run_twice_gives_the_same_tables_without_duplicates(spark, inputs, tmp_path):
    config = load_config(None)
    tables = ("examples", "class_issues", "classes")
    results = []
    for attempt in ("one", "two"):
        run_audit_job(spark, str(inputs / "l.parquet"), str(inputs / "p.parquet"),
                      str(tmp_path), config, RunContext("s", "2026-11-01", attempt))
        results.append({t: sorted(map(str, spark.read.parquet(str(tmp_path / t)).collect()))
                        for t in tables})
    assert results[0] == results[1]
    assert len(results[1]["examples"]) == 500
    assert spark.read.parquet(str(tmp_path / "runs")).count() == 2


def test_the_intake_cache_is_freed_before_the_result_tables_are_written(spark, inputs, tmp_path,
                                                                         monkeypatch):
    # scratch disk: at 100M x 40 the intake's cache and the scored cache together, plus the
    # writes' shuffles, outgrew the local disk; the writes read only the scored cache
    # (`examples` and `class_issues` are finished by the tasks' own files: TaskWrittenTable)
    def cached_rdds() -> int:
        return spark.sparkContext._jsc.getPersistentRDDs().size()

    held: dict[str, int] = {}
    write, finish = api.write_partition, TaskWrittenTable.finish

    def counting_write(df, staging, table, *args):
        held[table] = cached_rdds()
        return write(df, staging, table, *args)

    def counting_finish(table):
        held[os.path.basename(table.files.directory.split("/dataset=")[0])] = cached_rdds()
        return finish(table)

    monkeypatch.setattr(api, "write_partition", counting_write)
    monkeypatch.setattr(TaskWrittenTable, "finish", counting_finish)
    assert cached_rdds() == 0
    run_audit_job(spark, str(inputs / "l.parquet"), str(inputs / "p.parquet"), str(tmp_path),
                  load_config(None), RunContext("c", "2026-11-01", "caches"))
    assert held == {"quarantine": 1, "examples": 1, "class_issues": 1, "classes": 1,
                    "summary": 1}
    assert cached_rdds() == 0


def test_stage_lines_and_no_credentials_in_logs_or_outputs(spark, inputs, tmp_path, capsys,
                                                           caplog):
    secret = "AKIA-very-secret-value"
    with caplog.at_level(logging.INFO, logger="labelqa"):
        code = main(["audit", "--labels", str(inputs / "l.parquet"), "--predictions",
                     str(inputs / "p.parquet"), "--output", str(tmp_path), "--dataset", "c",
                     "--run-date", "2026-11-04", *FAST,
                     "--set", f"spark.conf.spark.hadoop.fs.s3a.secret.key={secret}"])
    assert code == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "labelqa"]
    assert any(m.startswith("stage read and check inputs: 500 rows, ") for m in messages)
    assert any(m.startswith("stage audit: 500 rows, ") for m in messages)
    everything = "\n".join(messages) + capsys.readouterr().out
    stored = b"".join(_snapshot(tmp_path).values())
    assert secret not in everything and secret.encode() not in stored
    summary = spark.read.parquet(str(tmp_path / "summary")).first()
    assert json.loads(summary["config_json"])["spark"]["conf"][
        "spark.hadoop.fs.s3a.secret.key"] == "*****"


def test_gates_are_validated():
    with pytest.raises(Exception, match="gates.min_health_score: 1.5 is outside 0..1"):
        load_config(None, ["gates.min_health_score=1.5"])


def test_gate_failed_carries_the_report():
    error = GateFailed(["x > y"], report="r")
    assert error.exit_code == 3 and error.report == "r" and "x > y" in str(error)


def test_make_dist_builds_what_py_files_needs(tmp_path):
    import subprocess

    result = subprocess.run(["make", "-s", "dist"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "MAKEFLAGS": ""}, timeout=300)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(ROOT / "dist/labelqa.zip") as archive:
        names = set(archive.namelist())
    assert {"labelqa/__init__.py", "labelqa/cli.py", "labelqa/core/plan.py",
            "labelqa/spark/audit.py"} <= names
    assert not any(n.endswith(".pyc") for n in names)

"""Catalog tables in and out: inputs named `table:NAME`, outputs also written to
`output.catalog.database` partitioned by dataset and run_date, a rerun replacing its own
partition only, a failed run changing nothing. In the test session's in-memory catalog; the
slow test at the end does the same with an embedded Hive metastore, in processes of their own
(a Hive catalog is a setting a session starts with)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labelqa import api
from labelqa.cli import main
from labelqa.sample import generate, write_sample
from labelqa.spark.catalog import embedded_metastore_conf

RUN_DATE = "2026-11-21"
FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4"]
AUDIT_TABLES = ("examples", "class_issues", "classes", "summary", "quarantine")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sources(spark, tmp_path_factory):
    """Two samples as Parquet paths and as catalog tables `lq_src.tags{1,2}`, `preds{1,2}`."""
    root = tmp_path_factory.mktemp("catalog-inputs")
    spark.sql("CREATE DATABASE IF NOT EXISTS lq_src")
    for index, seed in ((1, 81), (2, 82)):
        labels, predictions = root / f"labels{index}", root / f"predictions{index}"
        write_sample(generate(800, 5, seed), str(labels), str(predictions))
        spark.read.parquet(str(labels)).write.mode("overwrite").saveAsTable(
            f"lq_src.tags{index}")
        spark.read.parquet(str(predictions)).write.mode("overwrite").saveAsTable(
            f"lq_src.preds{index}")
    return root


def _audit(output: Path, dataset: str, index: int, *extra: str, catalog="lq_out") -> int:
    return main(["audit", "--labels", f"table:lq_src.tags{index}", "--predictions",
                 f"table:lq_src.preds{index}", "--output", str(output), "--dataset", dataset,
                 "--run-date", RUN_DATE, "--set", f"output.catalog.database={catalog}", *FAST,
                 *extra])


def _rows(df) -> list[str]:
    return sorted(map(str, df.collect()))


def _catalog_partition(spark, table: str, dataset: str, catalog="lq_out") -> list[str]:
    return _rows(spark.table(f"{catalog}.{table}").where(f"dataset = '{dataset}'")
                 .drop("dataset", "run_date"))


def _path_partition(spark, output: Path, table: str, dataset: str) -> list[str]:
    return _rows(spark.read.parquet(str(output / table / f"dataset={dataset}" /
                                        f"run_date={RUN_DATE}")))


def test_catalog_inputs_audit_like_their_parquet_and_the_tables_reach_the_catalog(
        spark, sources, tmp_path):
    by_path = tmp_path / "by_path"
    assert main(["audit", "--labels", str(sources / "labels1"), "--predictions",
                 str(sources / "predictions1"), "--output", str(by_path), "--dataset", "c",
                 "--run-date", RUN_DATE, *FAST]) == 0
    output = tmp_path / "out"
    assert _audit(output, "c", 1) == 0
    run_ids = _run_id(spark, output), _run_id(spark, by_path)
    for table in AUDIT_TABLES:
        published = _path_partition(spark, output, table, "c")
        assert _catalog_partition(spark, table, "c") == published, table
        if table == "summary":  # its config_json names the catalog, its timings differ
            continue
        assert ([r.replace(run_ids[0], "") for r in published] ==
                [r.replace(run_ids[1], "") for r in
                 _path_partition(spark, by_path, table, "c")]), table
    partitions = spark.sql("SHOW PARTITIONS lq_out.examples").collect()
    assert [row[0] for row in partitions] == [f"dataset=c/run_date={RUN_DATE}"]
    assert spark.table("lq_out.runs").where("dataset = 'c'").count() == 1
    manifest = json.loads((output / "_manifests" / "dataset=c" /
                           f"run_date={RUN_DATE}.json").read_text())
    assert manifest["inputs"] == {"labels": "table:lq_src.tags1",
                                  "predictions": "table:lq_src.preds1"}
    assert manifest["config"]["output"]["catalog"] == {"database": "lq_out"}


def _run_id(spark, output: Path) -> str:
    return spark.read.parquet(str(output / "summary")).first()["run_id"]


def test_a_rerun_replaces_only_its_own_catalog_partition_and_a_failed_run_changes_nothing(
        spark, sources, tmp_path, monkeypatch):
    output, catalog = tmp_path / "out", "lq_rerun"
    assert _audit(output, "c", 1, catalog=catalog) == 0
    assert _audit(output, "d", 1, catalog=catalog) == 0
    kept = _catalog_partition(spark, "examples", "d", catalog)
    assert _audit(output, "c", 2, catalog=catalog) == 0  # c's data changes, d's stays
    assert _catalog_partition(spark, "examples", "d", catalog) == kept
    assert (_catalog_partition(spark, "examples", "c", catalog)
            == _path_partition(spark, output, "examples", "c"))
    assert _catalog_partition(spark, "examples", "c", catalog) != kept
    assert spark.table(f"{catalog}.examples").count() == 1600  # 800 + 800, no duplicates
    assert spark.table(f"{catalog}.runs").where("dataset = 'c'").count() == 2

    before = {table: _rows(spark.table(f"{catalog}.{table}")) for table in AUDIT_TABLES}

    def explode(*_):
        raise RuntimeError("injected failure after the tables were staged")

    monkeypatch.setattr(api, "evaluate_gates", explode)
    assert _audit(output, "d", 2, catalog=catalog) == 1
    assert {table: _rows(spark.table(f"{catalog}.{table}")) for table in AUDIT_TABLES} == before


def test_a_catalog_table_that_no_longer_fits_stops_the_run_before_anything_is_published(
        spark, sources, tmp_path, capsys):
    output, catalog = tmp_path / "out", "lq_shape"
    assert _audit(output, "c", 1, catalog=catalog) == 0
    before = _rows(spark.table(f"{catalog}.examples"))
    files = sorted(p.relative_to(output) for p in output.rglob("*.parquet"))
    capsys.readouterr()
    assert _audit(output, "c", 2, "--set", "output.class_scores=true", catalog=catalog) == 2
    error = capsys.readouterr().err
    assert (f"labelqa: error: output.catalog: the catalog table {catalog}.examples does not "
            "take this run's partition (class_scores array<double>)") in error
    assert _rows(spark.table(f"{catalog}.examples")) == before
    assert sorted(p.relative_to(output) for p in output.rglob("*.parquet")) == files


def test_input_and_config_errors_name_the_table_or_key(spark, sources, tmp_path, capsys):
    assert main(["audit", "--labels", "table:lq_src.nosuch", "--predictions",
                 "table:lq_src.preds1", "--output", str(tmp_path), *FAST]) == 2
    assert ("labelqa: error: labels: cannot read the catalog table 'lq_src.nosuch': "
            in capsys.readouterr().err)
    assert _audit(tmp_path, "c", 1, catalog="no-dashes") == 2
    assert ("labelqa: error: output.catalog.database: 'no-dashes' is not a database name"
            in capsys.readouterr().err)


@pytest.mark.slow
def test_catalog_tables_in_an_embedded_hive_metastore(spark, sources, tmp_path):
    """The same in a Hive catalog (Derby, in tmp_path): inputs by name, outputs in `lq`, a
    rerun of one dataset, a failed run; then the catalog read back by a process of its own."""
    conf = embedded_metastore_conf(str(tmp_path / "metastore"))
    settings = [x for key, value in conf.items() for x in ("--set", f"spark.conf.{key}={value}")]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYSPARK_")}

    def python(script: str, *arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", script, *arguments], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)

    session = ("import json, sys\nfrom labelqa.spark.session import build_session\n"
               f"spark = build_session('local[2]', {conf!r})\n")
    seeded = python(session + "spark.sql('CREATE DATABASE src')\n" + "".join(
        f"spark.read.parquet({str(sources / f'{kind}{i}')!r}).write.saveAsTable("
        f"'src.{table}{i}')\n" for i in (1, 2)
        for kind, table in (("labels", "tags"), ("predictions", "preds"))))
    assert seeded.returncode == 0, seeded.stderr
    audit = ("import sys\nfrom labelqa.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    failing = ("import sys\nimport labelqa.api as api\n"
               "def explode(*_):\n    raise RuntimeError('injected failure')\n"
               "api.evaluate_gates = explode\n") + audit

    def run(dataset: str, index: int, script: str = audit) -> subprocess.CompletedProcess:
        return python(script, "audit", "--labels", f"table:src.tags{index}",
                      "--predictions", f"table:src.preds{index}", "--output", "out",
                      "--dataset", dataset, "--run-date", RUN_DATE, "--master", "local[2]",
                      "--set", "output.catalog.database=lq", *settings)

    for dataset, index in (("c", 1), ("d", 1), ("c", 2)):
        done = run(dataset, index)
        assert done.returncode == 0, done.stderr
    assert run("d", 2, failing).returncode == 1
    read_back = python(session + (
        "out = {t: sorted(map(str, spark.table('lq.' + t).drop('run_date').collect()))\n"
        f"       for t in {AUDIT_TABLES!r}}}\n"
        "out['partitions'] = [r[0] for r in spark.sql('SHOW PARTITIONS lq.examples').collect()]\n"
        "out['runs'] = spark.table('lq.runs').count()\n"
        "print(json.dumps(out))\n"))
    assert read_back.returncode == 0, read_back.stderr
    found = json.loads(read_back.stdout.strip().splitlines()[-1])
    assert found["partitions"] == [f"dataset=c/run_date={RUN_DATE}",
                                   f"dataset=d/run_date={RUN_DATE}"]
    assert found["runs"] == 3  # the failed run appended nothing
    for table in AUDIT_TABLES:  # the catalog holds exactly the published path layout
        published = spark.read.parquet(str(tmp_path / "out" / table)).drop("run_date")
        assert found[table] == _rows(published.select(
            *[c for c in published.columns if c != "dataset"], "dataset")), table


def test_predict_reads_features_by_name_and_writes_its_tables_to_the_catalog(spark, tmp_path):
    from tests.test_predict import tagging_data, write_tables

    labels, features = write_tables(tmp_path, *tagging_data(n=600))
    spark.sql("CREATE DATABASE IF NOT EXISTS lq_src")
    spark.read.parquet(features).write.saveAsTable("lq_src.features")
    spark.read.parquet(labels).write.saveAsTable("lq_src.predict_tags")
    output = tmp_path / "out"
    assert main(["predict", "--features", "table:lq_src.features", "--labels",
                 "table:lq_src.predict_tags", "--output", str(output), "--dataset", "p",
                 "--run-date", RUN_DATE, "--set", "output.catalog.database=lq_predict",
                 *FAST]) == 0
    for table in ("predictions", "model_quality", "predict_quarantine"):
        assert (_catalog_partition(spark, table, "p", "lq_predict")
                == _path_partition(spark, output, table, "p")), table
    assert spark.table("lq_predict.predictions").count() == 600

"""SQL for analysts: `labelqa register` puts the tables in a Spark catalog, and every
documented query gives the same, independently checked, answer in Spark SQL and DuckDB."""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from labelqa.cli import main
from labelqa.errors import ConfigError
from labelqa.queries import QUERIES, duckdb_views
from labelqa.spark.catalog import register_tables
from tests.conftest import RUN_DATES, bare_environment

ROOT = Path(__file__).resolve().parent.parent
LATEST, PREVIOUS = dt.date.fromisoformat(RUN_DATES[1]), dt.date.fromisoformat(RUN_DATES[0])
QUERY = {query.name: query for query in QUERIES}


@pytest.fixture(scope="module")
def registered(spark, two_runs):
    output, _ = two_runs
    tables = register_tables(spark, str(output))
    yield tables
    spark.sql("DROP DATABASE IF EXISTS labelqa CASCADE")


@pytest.fixture(scope="module")
def duck(two_runs):
    output, _ = two_runs
    con = duckdb.connect()
    con.execute(duckdb_views(str(output)))
    yield con
    con.close()


def _table(spark, output: Path, table: str, run_date: dt.date | None = LATEST) -> pd.DataFrame:
    frame = spark.read.parquet(str(output / table)).toPandas()
    frame = frame[frame["dataset"] == "demo"]
    if run_date is not None:
        frame = frame[frame["run_date"] == run_date]
    return frame.reset_index(drop=True)


def _both(spark, duck, name: str) -> list[tuple]:
    """The query's rows from Spark and from DuckDB, asserted identical."""
    sql = QUERY[name].sql
    in_spark = [tuple(row) for row in spark.sql(sql).collect()]
    in_duckdb = [tuple(row) for row in duck.execute(sql).fetchall()]
    assert in_spark == in_duckdb
    return in_spark


def test_register_creates_every_table_with_its_partitions(spark, registered, two_runs):
    output, _ = two_runs
    assert [(t.name, t.partitions) for t in registered] == [
        ("labelqa.examples", 2), ("labelqa.class_issues", 2), ("labelqa.classes", 2),
        ("labelqa.summary", 2), ("labelqa.quarantine", 2), ("labelqa.runs", 1)]
    assert spark.table("labelqa.examples").count() == 3000
    assert spark.table("labelqa.runs").count() == 2
    assert registered[0].location == f"file:{output}/examples"


def test_duckdb_quarantine_view_reads_a_run_that_rejected_nothing(duck, two_runs):
    """Every run writes its quarantine partition (no rows when nothing was rejected), so the
    view reads; its rows are the quarantine table's, partition columns included."""
    output, _ = two_runs
    files = sorted((output / "quarantine").glob("dataset=*/run_date=*/*.parquet"))
    assert len({f.parent for f in files}) == 2
    expected = sum(pd.read_parquet(f).shape[0] for f in files)
    assert duck.execute("SELECT count(*) FROM labelqa.quarantine").fetchone()[0] == expected
    columns = [row[0] for row in duck.execute("DESCRIBE labelqa.quarantine").fetchall()]
    assert columns == ["source", "id", "reason", "detail", "row_json", "dataset", "run_date"]


def test_register_is_idempotent_and_sees_new_partitions(spark, registered, two_runs):
    output, _ = two_runs
    again = register_tables(spark, str(output))
    assert again == registered
    assert spark.table("labelqa.summary").count() == 2


def test_register_refuses_to_drop_a_managed_table(spark, two_runs):
    output, _ = two_runs
    spark.sql("CREATE DATABASE IF NOT EXISTS analysts")
    spark.sql("CREATE TABLE analysts.examples (x int) USING parquet")
    try:
        with pytest.raises(ConfigError, match=r"analysts\.examples exists and is a MANAGED "
                                              r"table, not a labelqa registration"):
            register_tables(spark, str(output), "analysts")
        assert spark.table("analysts.examples").columns == ["x"]
    finally:
        spark.sql("DROP DATABASE analysts CASCADE")


def test_register_without_outputs_is_a_clear_error(spark, tmp_path, capsys):
    code = main(["register", "--output", str(tmp_path), "--database", "nothing_here",
                 "--metastore", str(tmp_path / "m"), "--master", "local[2,2]"])
    assert code == 2
    assert f"labelqa: error: no labelqa output tables under '{tmp_path}'" in \
        capsys.readouterr().err


def test_worst_examples_of_a_tag(spark, registered, duck, two_runs):
    output, _ = two_runs
    rows = _both(spark, duck, "worst_examples_of_a_tag")
    pairs = _table(spark, output, "class_issues")
    examples = _table(spark, output, "examples")
    dog = pairs[pairs["class_name"] == "dog"].merge(examples, on="id")
    dog = dog.sort_values(["class_score", "id"]).head(10)
    assert len(rows) == 10
    assert rows == [(r.issue_rank, r.id, r.given, r.pred_prob, r.class_score,
                     r.explanation["text"]) for r in dog.itertuples()]
    assert all("dog (p=" in row[5] for row in rows)


def test_missing_tags_per_class_equal_the_inverse_label_issues(spark, registered, duck,
                                                               two_runs):
    output, _ = two_runs
    rows = _both(spark, duck, "missing_tags_per_class")
    classes = _table(spark, output, "classes")
    expected = classes[classes["inverse_label_issues"] > 0]
    expected = expected.sort_values(["inverse_label_issues", "class_name"],
                                    ascending=[False, True])
    assert rows == list(zip(expected["class_name"], expected["inverse_label_issues"]))
    assert sum(count for _, count in rows) > 0


def test_classes_by_noise(spark, registered, duck, two_runs):
    output, _ = two_runs
    rows = _both(spark, duck, "classes_by_noise")
    classes = _table(spark, output, "classes")
    classes = classes.assign(total=classes["label_noise"] + classes["inverse_label_noise"])
    classes = classes.sort_values(["total", "class_index"], ascending=[False, True])
    assert rows == list(classes[["class_name", "num_given", "label_issues",
                                 "inverse_label_issues", "label_noise",
                                 "inverse_label_noise"]].itertuples(index=False, name=None))
    assert len(rows) == 10


def test_health_across_runs_equals_the_runs_reports(spark, registered, duck, two_runs):
    _, reports = two_runs
    rows = _both(spark, duck, "health_across_runs")
    assert rows == [(PREVIOUS, 1500, reports[0].num_label_issues,
                     reports[0].overall_health_score),
                    (LATEST, 1500, reports[1].num_label_issues,
                     reports[1].overall_health_score)]


def test_new_issues_since_previous_run(spark, registered, duck, two_runs):
    output, _ = two_runs
    rows = _both(spark, duck, "new_issues_since_previous_run")
    now = _table(spark, output, "examples")
    before = _table(spark, output, "examples", PREVIOUS)
    flagged_before = set(before.loc[before["is_label_issue"], "id"])
    new = now[now["is_label_issue"] & ~now["id"].isin(flagged_before)].sort_values("issue_rank")
    assert 0 < len(rows) < now["is_label_issue"].sum()
    assert rows == [(r.issue_rank, r.id, r.label_quality_score, r.explanation["text"])
                    for r in new.itertuples()]


def test_readme_shows_every_tested_query_and_the_duckdb_views():
    readme = (ROOT / "README.md").read_text()
    for query in QUERIES:
        assert query.sql in readme, query.name
    assert duckdb_views("demo-output") in readme


@pytest.mark.slow
def test_register_cli_makes_tables_visible_to_spark_sql(two_runs, tmp_path):
    """The real thing: an embedded Hive metastore on disk, then the spark-sql command line
    that `register` prints, in a new JVM."""
    output, _ = two_runs
    metastore = tmp_path / "metastore"
    registered = subprocess.run(
        [sys.executable, "-m", "labelqa", "register", "--output", str(output),
         "--metastore", str(metastore), "--master", "local[2]"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert registered.returncode == 0, registered.stderr
    assert "labelqa.examples: 2 partition(s)" in registered.stdout
    command = registered.stdout.split("query it with:\n  ", 1)[1].splitlines()[0]
    query = ("SELECT run_date, count(*), count(explanation) FROM labelqa.examples "
             "GROUP BY run_date ORDER BY run_date")
    # the line as a user pastes it: another directory, no virtual environment on PATH
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    line = f"{command} --master 'local[1]' -e {shlex.quote(query)}"
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True,
                            cwd=elsewhere, timeout=300, env=bare_environment())
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    examples = pd.read_parquet(output / "examples")
    flagged = examples.groupby("run_date", observed=True)["is_label_issue"].sum()
    assert lines == [[d, "1500", str(int(flagged[d]))] for d in RUN_DATES]


def test_examples_carry_the_tag_names_beside_the_indices(spark, two_runs):
    """given_tags / suggested_tags: the names of given_labels / suggested_labels, in the same
    order, on flagged and unflagged rows alike; an analyst filters by tag without a join."""
    from labelqa.demo import TAGS

    output, _ = two_runs
    examples = spark.read.parquet(str(output / "examples")).toPandas()
    assert len(examples) == 3000
    for indices, names in (("given_labels", "given_tags"),
                           ("suggested_labels", "suggested_tags")):
        assert [list(v) for v in examples[names]] == \
            [[TAGS[i] for i in row] for row in examples[indices]]
    changed = examples[examples["is_label_issue"]]
    assert len(changed) > 0
    assert (changed["given_tags"].map(list) != changed["suggested_tags"].map(list)).all()
    classes = spark.read.parquet(str(output / "classes"))
    dog = classes.filter("class_name = 'dog'").groupBy().sum("num_given").first()[0]
    tagged = spark.read.parquet(str(output / "examples")).filter(
        "array_contains(given_tags, 'dog')").count()
    assert tagged == dog


def test_new_issues_after_a_first_run_is_empty(two_runs, tmp_path):
    """With one run there is nothing to compare with: no row, not every flagged example."""
    import shutil

    output, _ = two_runs
    for table in ("examples", "summary"):
        source = output / table / "dataset=demo" / f"run_date={RUN_DATES[0]}"
        shutil.copytree(source, tmp_path / table / "dataset=demo" / source.name)
    con = duckdb.connect()
    try:
        views = [line for line in duckdb_views(str(tmp_path)).splitlines()
                 if "VIEW" not in line or "labelqa.examples " in line
                 or "labelqa.summary " in line]  # the tables the query reads
        con.execute("\n".join(views))
        assert con.execute(QUERY["new_issues_since_previous_run"].sql).fetchall() == []
        flagged = con.execute("SELECT count(*) FROM labelqa.examples WHERE is_label_issue")
        assert flagged.fetchone()[0] > 0
    finally:
        con.close()

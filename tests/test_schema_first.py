"""Item 7 of issue 20: both tables' schema problems at once, before any Spark job, and an
unknown tag names the class it resembles."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelqa.cli import main
from labelqa.config import load_config
from labelqa.errors import InputError, SchemaErrors
from labelqa.sample import generate, label_table_long, prediction_table, prediction_table_wide
from labelqa.spark.inputs import join_inputs
from labelqa.spark.vocabulary import resembling

FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4"]
NAMES = ("energy", "transport", "cell growth", "metabolism")
SAMPLE = generate(300, 4, 43)


def test_an_unknown_name_resembles_a_class_by_case_or_by_difflib():
    assert resembling("Energy", NAMES) == "energy"
    assert resembling("enrgy", NAMES) == "energy"
    assert resembling("cell-growth", NAMES) == "cell growth"
    assert resembling("zebra", NAMES) is None


def _audit(tmp_path, labels: pa.Table, predictions: pa.Table, *extra: str) -> int:
    pq.write_table(labels, str(tmp_path / "labels.parquet"))
    pq.write_table(predictions, str(tmp_path / "predictions.parquet"))
    return main(["audit", "--labels", str(tmp_path / "labels.parquet"), "--predictions",
                 str(tmp_path / "predictions.parquet"), "--output", str(tmp_path / "out"),
                 "--dataset", "s", "--run-date", "2026-11-03", *FAST, *extra])


def test_both_tables_schema_problems_are_reported_in_one_go(spark, tmp_path, capsys):
    labels = label_table_long(SAMPLE, NAMES).rename_columns(["id", "tags"])
    code = _audit(tmp_path, labels, prediction_table_wide(SAMPLE, NAMES))
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "labelqa: error: 2 schema problems: labels.labels: column not found (columns: id, "
        "tags); and predictions.pred_probs: column not found (columns: id, energy, transport, "
        "cell growth, metabolism); the table looks like the wide format (one probability "
        "column per class, named by the class): set input.predictions_format=wide")
    assert not (tmp_path / "out").exists()


def test_schema_problems_come_before_any_spark_job(spark, tmp_path):
    pq.write_table(label_table_long(SAMPLE, NAMES), str(tmp_path / "labels.parquet"))
    pq.write_table(prediction_table(SAMPLE), str(tmp_path / "predictions.parquet"))
    labels = spark.read.parquet(str(tmp_path / "labels.parquet"))
    predictions = spark.read.parquet(str(tmp_path / "predictions.parquet")).withColumnRenamed(
        "pred_probs", "probs")
    context = spark.sparkContext
    context.setJobGroup("schema-first", "the schema checks")
    try:
        with pytest.raises(InputError) as raised:
            join_inputs(labels, predictions, load_config(None, ["input.labels_format=long"]))
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    assert not isinstance(raised.value, SchemaErrors)
    assert str(raised.value) == "predictions.pred_probs: column not found (columns: id, probs)"
    assert list(context.statusTracker().getJobIdsForGroup("schema-first")) == []


def test_an_unknown_tag_names_the_class_it_resembles(spark, tmp_path, capsys):
    ids = [int(i) for i in SAMPLE.ids[:3]]
    labels = pa.concat_tables([label_table_long(SAMPLE, NAMES),
                               pa.table({"id": ids, "tag": ["enrgy", "Energy", "zebra"]})])
    code = _audit(tmp_path, labels, prediction_table_wide(SAMPLE, NAMES),
                  "--set", "input.labels_format=long", "--set", "input.predictions_format=wide",
                  "--set", "validation.max_bad_fraction=1")
    assert code == 0, capsys.readouterr().err
    details = {row["detail"] for row in spark.read.parquet(str(tmp_path / "out" / "quarantine"))
               .filter("reason = 'unknown_class'").collect()}
    hint = "; it resembles the class 'energy'"
    expected = set()
    for row, (tag, said) in enumerate((("enrgy", hint), ("Energy", hint), ("zebra", ""))):
        expected.add(f"tag '{tag}' is not one of the classes{said}")
        if SAMPLE.given[row].any():  # an example is quarantined whole: its other tag rows
            expected.add("another row of this id was rejected: "  # quote the rejected one
                         f"tag '{tag}' is not one of the classes{said}")
    assert len(expected) > 3 and details == expected

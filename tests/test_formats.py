"""One dataset in all nine label x prediction format combinations: identical outputs, equal to
cleanlab; class names that need quoting survive into every table and into SQL."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from pyspark.testing import assertDataFrameEqual

from labelqa.api import RunContext, run_audit_job
from labelqa.config import load_config
from labelqa.sample import (
    generate,
    label_table,
    label_table_long,
    label_table_onehot,
    prediction_table,
    prediction_table_long,
    prediction_table_wide,
)
from tests import oracle

NAMES = ("cat food", "a.b", "it's", "back`tick", "日本語", "9lives")
LABEL_FORMATS = {"array": label_table, "long": lambda s: label_table_long(s, NAMES),
                 "onehot": lambda s: label_table_onehot(s, NAMES)}
PREDICTION_FORMATS = {"array": prediction_table, "wide": lambda s: prediction_table_wide(
    s, NAMES, "p_"), "long": lambda s: prediction_table_long(s, NAMES)}
SAMPLE = generate(700, len(NAMES), 31)

pytestmark = pytest.mark.slow  # nine full runs: CI runs them (make test-slow)


@pytest.fixture(scope="module")
def outputs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    for kind, tables in (("labels", LABEL_FORMATS), ("predictions", PREDICTION_FORMATS)):
        for fmt, make in tables.items():
            pq.write_table(make(SAMPLE), str(root / f"{kind}-{fmt}.parquet"))
    results = {}
    for labels_format in LABEL_FORMATS:
        for predictions_format in PREDICTION_FORMATS:
            overrides = [f"input.labels_format={labels_format}",
                         f"input.predictions_format={predictions_format}",
                         "input.prediction_prefix=p_"]
            if predictions_format != "wide":  # wide: the names come from the columns
                overrides.append(f"classes={json.dumps(list(NAMES))}")
            config = load_config(None, overrides)
            dataset = f"{labels_format}-{predictions_format}"
            run_audit_job(spark, str(root / f"labels-{labels_format}.parquet"),
                          str(root / f"predictions-{predictions_format}.parquet"),
                          str(root / "out"), config, RunContext(dataset, "2026-11-01", dataset))
            results[dataset] = dataset
    return root / "out", results


def _table(spark, out, table, dataset):
    return (spark.read.parquet(str(out / table)).filter(f"dataset = '{dataset}'")
            .drop("dataset", "run_date"))


@pytest.mark.parametrize("table", ["examples", "class_issues", "classes"])
def test_all_nine_combinations_give_identical_tables(spark, outputs, table):
    out, datasets = outputs
    reference = _table(spark, out, table, "array-array")
    assert reference.count() > 0
    for dataset in datasets:
        assertDataFrameEqual(_table(spark, out, table, dataset), reference)


def test_the_outputs_equal_cleanlab_and_keep_the_names(spark, outputs):
    out, _ = outputs
    examples = _table(spark, out, "examples", "long-wide").toPandas().set_index("id")
    examples = examples.loc[list(SAMPLE.ids)]
    ref = oracle.reference(SAMPLE, load_config(None).scoring, load_config(None).issues)
    np.testing.assert_array_equal(examples.is_label_issue.to_numpy(), ref.is_label_issue)
    np.testing.assert_array_equal(examples.label_quality_score.to_numpy(),
                                  ref.label_quality_score)
    assert [list(v) for v in examples.given_tags] == [[NAMES[k] for k in row]
                                                       for row in SAMPLE.label_lists]
    assert [list(v) for v in examples.suggested_tags] == [
        [NAMES[k] for k in row] for row in examples.suggested_labels]
    classes = _table(spark, out, "classes", "onehot-long").orderBy("class_index").toPandas()
    assert tuple(classes.class_name) == NAMES
    pairs = _table(spark, out, "class_issues", "onehot-long")
    assert set(r[0] for r in pairs.select("class_name").distinct().collect()) <= set(NAMES)


def test_names_work_in_sql(spark, outputs):
    out, _ = outputs
    spark.read.parquet(str(out / "classes")).createOrReplaceTempView("classes")
    rows = spark.sql("SELECT class_index FROM classes WHERE dataset = 'array-long' "
                     "AND class_name IN ('it''s', 'back`tick', '日本語', 'a.b') "
                     "ORDER BY class_index").collect()
    assert [r.class_index for r in rows] == [1, 2, 3, 4]

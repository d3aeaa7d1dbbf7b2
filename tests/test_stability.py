"""Stable output: partitioning, retried task failures and reruns do not change results."""

from __future__ import annotations

import os

from pyspark import TaskContext
from pyspark.testing import assertDataFrameEqual

from labelqa.api import RunContext, audit_dataframes, run_audit_job
from labelqa.config import load_config
from labelqa.sample import generate, label_table, prediction_table, write_sample
from labelqa.spark.inputs import BLOCKS_PER_BATCH
from labelqa.spark.session import SessionSettings

CONFIG = load_config(None, ["output.class_scores=true"])


def _collected(tables):
    """The output tables' rows and the number of label issues."""
    frames = {name: getattr(tables, name).collect()
              for name in ("examples", "class_issues", "classes")}
    return frames, tables.num_label_issues


def _tables(spark, labels, predictions, config=CONFIG):
    with audit_dataframes(spark, labels, predictions, config) as (_, tables):
        return _collected(tables)


def _assert_same(spark, left, right):
    for name in left[0]:
        assertDataFrameEqual(left[0][name], right[0][name])
    assert left[1] == right[1]


def test_same_output_in_one_partition_or_many(spark, tmp_path):
    sample = generate(3000, 7, 21, decimals=2)  # ties: the id tie-break must hold everywhere
    write_sample(sample, str(tmp_path / "l1"), str(tmp_path / "p1"), rows_per_file=3000)
    write_sample(sample, str(tmp_path / "l9"), str(tmp_path / "p9"), rows_per_file=337,
                 shuffle_seed=5)
    one = _tables(spark, spark.read.parquet(str(tmp_path / "l1")).coalesce(1),
                  spark.read.parquet(str(tmp_path / "p1")).coalesce(1))
    many = _tables(spark, spark.read.parquet(str(tmp_path / "l9")).repartition(11),
                   spark.read.parquet(str(tmp_path / "p9")).repartition(7))
    _assert_same(spark, one, many)
    assert one[1] > 0


def _tables_with(spark, settings, labels, predictions):
    """The tables, and the intake's number of partitions, under session `settings`."""
    applied = SessionSettings.apply(spark, settings)
    try:
        with audit_dataframes(spark, labels, predictions, CONFIG) as (joined, tables):
            return _collected(tables), joined.blocks.rdd.getNumPartitions()
    finally:
        applied.restore()


def test_same_output_whatever_the_number_of_intake_partitions(spark):
    """The intake's partitions become the blocks every later pass reads: one or many, the
    exact sums, the cuts and the ranks are the same."""
    sample = generate(3000, 7, 24, decimals=2)
    labels = spark.createDataFrame(label_table(sample))
    predictions = spark.createDataFrame(prediction_table(sample))
    one, one_count = _tables_with(spark, {"spark.sql.shuffle.partitions": "1"}, labels,
                                  predictions)
    many, many_count = _tables_with(
        spark, {"spark.sql.adaptive.advisoryPartitionSizeInBytes": "16k"}, labels, predictions)
    # float64 probabilities: (3000 x (7 x 8 + 48) + 3000 x 64) bytes / 16k per partition
    assert (one_count, many_count) == (1, 31)
    _assert_same(spark, one, many)
    assert one[1] > 0


def test_same_output_whatever_the_blocks_per_arrow_batch(spark):
    """By default the intake makes one block per partition here (20,000 rows per block at
    K = 7) and the later passes read a few blocks per Arrow batch; pinned at 7 rows, the
    intake makes blocks of 7 rows and every pass reads 7 blocks per batch. The tables agree."""
    sample = generate(3000, 7, 25, decimals=2)
    labels = spark.createDataFrame(label_table(sample))
    predictions = spark.createDataFrame(prediction_table(sample))
    pinned = load_config(None, ["output.class_scores=true",
                                "spark.conf.spark.sql.execution.arrow.maxRecordsPerBatch=7"])
    default = _tables(spark, labels, predictions)
    batch = "spark.sql.execution.arrow.maxRecordsPerBatch"
    applied = SessionSettings.apply(spark, {batch: "7"})
    try:
        with audit_dataframes(spark, labels, predictions, pinned) as (joined, tables):
            assert spark.conf.get(batch) == "7"  # a setting of the config is the caller's
            blocks = joined.blocks.count()
            seven = _collected(tables)
    finally:
        applied.restore()
    assert blocks >= 3000 // 7
    _assert_same(spark, default, seven)
    assert default[1] > 0


def _fail_first_attempt(batches):
    """Every task of the stage fails once; Spark (local[2,2]) retries it."""
    if TaskContext.get().attemptNumber() == 0:
        raise RuntimeError("injected task failure")
    yield from batches


def test_same_output_after_injected_task_failures(spark):
    sample = generate(2000, 5, 22)
    labels = spark.createDataFrame(label_table(sample)).repartition(3)
    predictions = spark.createDataFrame(prediction_table(sample)).repartition(3)
    clean = _tables(spark, labels, predictions)
    flaky_labels = labels.mapInArrow(_fail_first_attempt, labels.schema)
    flaky_predictions = predictions.mapInArrow(_fail_first_attempt, predictions.schema)
    _assert_same(spark, clean, _tables(spark, flaky_labels, flaky_predictions))


def _listing(root):
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = (os.stat(path).st_mtime_ns, handle.read())
    return found


def test_rerun_replaces_only_its_own_partition(spark, tmp_path):
    sample = generate(600, 4, 23)
    labels, predictions = str(tmp_path / "l.parquet"), str(tmp_path / "p.parquet")
    write_sample(sample, labels, predictions)
    out = str(tmp_path / "out")
    for dataset, day in (("a", "2026-11-01"), ("a", "2026-11-02"), ("b", "2026-11-01")):
        run_audit_job(spark, labels, predictions, out, CONFIG,
                      RunContext(dataset, day, f"run-{dataset}-{day}"))
    before = _listing(out)
    rerun = load_config(None, ["issues.filter_by=confident_learning"])
    run_audit_job(spark, labels, predictions, out, rerun, RunContext("a", "2026-11-01", "again"))
    after = _listing(out)

    def is_own(path):  # the partition's files and its manifest (with Hadoop's .crc files)
        return "dataset=a/" in path and "run_date=2026-11-01" in path

    def is_other(path):  # the run history gains a row per run by design
        return not is_own(path) and not path.startswith("runs/")

    own = [p for p in after if is_own(p)]
    others_before = {p: v for p, v in before.items() if is_other(p)}
    others_after = {p: v for p, v in after.items() if is_other(p)}
    assert others_after == others_before  # same files, same bytes, not even rewritten
    assert own and all(after[p] != before.get(p) for p in own)
    summary = spark.read.parquet(f"{out}/summary").toPandas()
    assert sorted(zip(summary.dataset, summary.run_date.astype(str), summary.run_id)) == [
        ("a", "2026-11-01", "again"), ("a", "2026-11-02", "run-a-2026-11-02"),
        ("b", "2026-11-01", "run-b-2026-11-01")]
    examples = spark.read.parquet(f"{out}/examples")
    assert examples.count() == 3 * 600  # no duplicates after the rerun


def test_an_audit_leaves_the_callers_session_settings_as_it_found_them(spark):
    """The intake sizes Arrow and Parquet reader batches from K and lifts the Arrow byte
    limit, then the passes over its cached blocks take a few blocks per Arrow batch, for the
    audit only."""
    sample = generate(300, 4, 23)
    labels = spark.createDataFrame(label_table(sample))
    predictions = spark.createDataFrame(prediction_table(sample))
    batch, reader = ("spark.sql.execution.arrow.maxRecordsPerBatch",
                     "spark.sql.parquet.columnarReaderBatchSize")
    limit = "spark.sql.execution.arrow.maxBytesPerBatch"
    before = spark.conf.get(reader, None)
    spark.conf.set(batch, "777")
    spark.conf.set(limit, "1000000")
    spark.conf.unset(reader)
    try:
        with audit_dataframes(spark, labels, predictions, CONFIG) as (_, tables):
            # the intake ran with records_per_batch(4) = 20000; its blocks are cached
            assert spark.conf.get(batch) == str(BLOCKS_PER_BATCH)
            assert spark.conf.get(limit) == "2147483647"
            assert tables.examples.count() == 300
        assert spark.conf.get(batch) == "777"
        assert spark.conf.get(limit) == "1000000"
        assert spark.conf.get(reader, None) is None
    finally:
        spark.conf.unset(batch)
        spark.conf.unset(limit)
        if before is not None:
            spark.conf.set(reader, before)

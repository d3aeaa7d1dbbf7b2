"""Output files the audit's tasks write themselves: whole files or none, retries replace."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.testing import assertDataFrameEqual

from labelqa.api import RunContext, audit_dataframes, run_audit_job
from labelqa.config import load_config
from labelqa.sample import generate, write_sample
from labelqa.spark.task_files import (
    TEMPORARY_SUFFIX,
    TaskFiles,
    finish_directory,
    local_path,
)

SCHEMA = pa.schema([("id", pa.int64()), ("tags", pa.list_(pa.string()))])


def _batch(ids):
    return pa.RecordBatch.from_arrays(
        [pa.array(ids, pa.int64()), pa.array([[f"t{i}"] for i in ids], pa.list_(pa.string()))],
        schema=SCHEMA)


def test_local_paths_are_written_by_tasks_and_other_file_systems_are_not():
    assert local_path("file:/data/out") == "/data/out"
    assert local_path("file:///data/out") == "/data/out"
    for uri in ("s3a://bucket/out", "hdfs://namenode:8020/out", "abfss://c@a.dfs.core/out"):
        assert local_path(uri) is None


def test_a_task_file_holds_every_batch_and_is_named_by_its_part(tmp_path):
    files = TaskFiles(str(tmp_path), SCHEMA, "scored")
    assert files.write(3, [_batch([1, 2]), _batch([]), _batch([3])]) == 3
    assert os.listdir(tmp_path) == ["part-00003-scored.snappy.parquet"]
    assert pq.read_table(tmp_path / "part-00003-scored.snappy.parquet").equals(
        pa.Table.from_batches([_batch([1, 2, 3])]))


def test_row_groups_are_bounded_by_bytes_as_well_as_rows(tmp_path, monkeypatch):
    """Wide rows (hundreds of tags at K = 4000) are not buffered 131,072 at a time; a single
    batch above the bound is split into row groups, and every row is kept in order."""
    from labelqa.spark import task_files

    monkeypatch.setattr(task_files, "ROW_GROUP_BYTES", 64 * 1024)
    wide = pa.RecordBatch.from_arrays(
        [pa.array(range(2000), pa.int64()),
         pa.array([[f"tag{i:04d}-{k}" for k in range(20)] for i in range(2000)],
                  pa.list_(pa.string()))], schema=SCHEMA)
    per_row = wide.nbytes / wide.num_rows
    files = TaskFiles(str(tmp_path), SCHEMA, "ranked")
    assert files.write(0, [wide]) == 2000
    written = pq.ParquetFile(tmp_path / "part-00000-ranked.snappy.parquet")
    group_rows = [written.metadata.row_group(g).num_rows
                  for g in range(written.metadata.num_row_groups)]
    assert max(group_rows) == int(64 * 1024 / per_row)
    assert sum(group_rows) == 2000
    assert written.read().equals(pa.Table.from_batches([wide]))
    streamed = TaskFiles(str(tmp_path / "streamed"), SCHEMA, "scored")
    with streamed.writer(1) as writer:
        for start in range(0, 2000, 100):
            writer.add(wide.slice(start, 100))
            assert writer.pending_bytes < 64 * 1024  # flushed once the bound is reached
    assert pq.read_table(tmp_path / "streamed").equals(pa.Table.from_batches([wide]))


def test_a_retried_attempt_replaces_the_file_of_its_part(tmp_path):
    files = TaskFiles(str(tmp_path), SCHEMA, "ranked")
    files.write(0, [_batch([1, 2])])
    files.write(0, [_batch([1, 2])])
    assert os.listdir(tmp_path) == ["part-00000-ranked.snappy.parquet"]
    assert pq.read_table(tmp_path).num_rows == 2


def test_a_failed_attempt_leaves_no_file(tmp_path):
    files = TaskFiles(str(tmp_path), SCHEMA, "scored")
    with pytest.raises(RuntimeError, match="task lost"):
        with files.writer(1) as writer:
            writer.add(_batch(list(range(200_000))))  # more than a row group: written
            raise RuntimeError("task lost")
    assert os.listdir(tmp_path) == []


def test_a_part_without_rows_writes_no_file(tmp_path):
    assert TaskFiles(str(tmp_path / "t"), SCHEMA, "scored").write(0, [_batch([])]) == 0
    assert not (tmp_path / "t").exists()


def test_finishing_removes_killed_attempts_and_keeps_the_schema_of_an_empty_table(tmp_path):
    files = TaskFiles(str(tmp_path), SCHEMA, "scored")
    killed = tmp_path / f".part-00002-scored.snappy.parquet.0a1b{TEMPORARY_SUFFIX}"
    killed.write_bytes(b"half a file")
    finish_directory(files)
    assert os.listdir(tmp_path) == ["part-00000-empty.snappy.parquet"]
    table = pq.read_table(tmp_path)
    assert (table.num_rows, table.schema) == (0, SCHEMA)


def test_finishing_a_table_with_rows_adds_no_empty_file(tmp_path):
    files = TaskFiles(str(tmp_path), SCHEMA, "scored")
    files.write(4, [_batch([7])])
    finish_directory(files)
    assert os.listdir(tmp_path) == ["part-00004-scored.snappy.parquet"]


def test_tables_written_by_the_tasks_equal_the_audits_dataframes(spark, tmp_path):
    """The published `examples` and `class_issues` (written by the scoring and ranking tasks)
    hold exactly the rows of the audit's DataFrames, with the same Spark schema."""
    config = load_config(None, ["output.class_scores=true"])
    sample = generate(3000, 7, 31, decimals=2)  # ties: ranks broken by id
    labels, predictions = tmp_path / "l", tmp_path / "p"
    write_sample(sample, str(labels), str(predictions), rows_per_file=700, shuffle_seed=3)
    out = tmp_path / "out"
    run_audit_job(spark, str(labels), str(predictions), str(out), config,
                  RunContext("d", "2026-12-04", "run-1"))
    with audit_dataframes(spark, spark.read.parquet(str(labels)),
                          spark.read.parquet(str(predictions)), config) as (_, tables):
        for name in ("examples", "class_issues"):
            partition = out / name / "dataset=d" / "run_date=2026-12-04"
            written = spark.read.parquet(str(partition))
            assert written.schema == getattr(tables, name).schema
            assertDataFrameEqual(written, getattr(tables, name))
            names = sorted(os.listdir(partition))
            assert names and all(n.startswith("part-") and n.endswith(".snappy.parquet")
                                 for n in names), names
        assert tables.num_label_issues > 0

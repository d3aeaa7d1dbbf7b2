"""Run history: the `runs` table and the comparison with the dataset's previous run."""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from labelqa.errors import LabelqaError
from labelqa.record import Comparison, NoiseChange, RunRecord
from labelqa.spark.catalog_output import append_catalog_rows
from labelqa.spark.driver import path_exists
from labelqa.tables import RUNS, RUNS_SCHEMA, table_path


class HistoryError(LabelqaError):
    """An earlier run's table exists but cannot be read: the comparison would be wrong
    (exit 2: a rerun cannot repair it)."""

    exit_code = 2

    def __init__(self, table: str, path: str, error: Exception) -> None:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        super().__init__(f"the run history's {table} table at {path!r} cannot be read "
                         f"({reason}): repair or move it; labelqa does not treat it as a first "
                         "run")


def _read(spark: SparkSession, output: str, table: str) -> DataFrame | None:
    """The table, or None before the first run has written it. Any other failure to read it
    (a corrupt or foreign table) is an error: it must not pass for a first run."""
    path = table_path(output, table)
    if not path_exists(spark, path):
        return None
    try:
        return spark.read.parquet(path)
    except AnalysisException as error:
        if error.getCondition() == "UNABLE_TO_INFER_SCHEMA":  # the directory, no file yet
            return None
        raise HistoryError(table, path, error) from None


def compare_with_previous(spark: SparkSession, output: str, dataset: str, run_date: str,
                          classes: DataFrame, run_id: str | None = None,
                          top: int = 5) -> Comparison:
    """The latest other run of `dataset` still in the tables: an earlier run date, or, for a
    rerun before it publishes, the run of the same date it replaces (K-sized reads only).

    Classes move by label noise and inverse label noise together (forgotten tags, the
    inverse noise, are most annotation errors)."""
    summary = _read(spark, output, "summary")
    if summary is None:
        return Comparison()
    date = F.col("run_date").cast("string")
    other = date < run_date
    if run_id is not None:  # a rerun, before it publishes: the run it replaces
        other = other | ((date == run_date) & (F.col("run_id") != F.lit(run_id)))
    earlier = (summary.filter((F.col("dataset") == dataset) & other)
               .orderBy(date.desc(), F.col("finished_at").desc()).limit(1).collect())
    if not earlier:
        return Comparison()
    previous = earlier[0]
    previous_date = str(previous["run_date"])
    old_classes = _read(spark, output, "classes")
    changes = []
    if old_classes is not None:
        old = (old_classes.filter((F.col("dataset") == dataset)
                                  & (F.col("run_date").cast("string") == previous_date))
               .select("class_name", F.col("label_noise").alias("previous_label_noise"),
                       F.col("inverse_label_noise").alias("previous_inverse_label_noise")))
        moved = (classes.select("class_name", "label_noise", "inverse_label_noise")
                 .join(old, "class_name")
                 .withColumn("change", F.col("label_noise") - F.col("previous_label_noise"))
                 .withColumn("inverse_change", F.col("inverse_label_noise")
                             - F.col("previous_inverse_label_noise"))
                 .orderBy((F.abs("change") + F.abs("inverse_change")).desc(), "class_name")
                 .limit(top)
                 .select("class_name", "label_noise", "previous_label_noise", "change",
                         "inverse_label_noise", "previous_inverse_label_noise",
                         "inverse_change").collect())
        changes = tuple(NoiseChange(**row.asDict()) for row in moved
                        if row["change"] != 0 or row["inverse_change"] != 0)
    return Comparison(previous_date, previous["overall_health_score"],
                      previous["num_label_issues"], changes, previous["run_id"])


def append_run(spark: SparkSession, output: str, record: RunRecord,
               catalog: str | None = None) -> None:
    """Add this run's row to `runs/dataset=<name>/` (history accumulates; never rewritten),
    and with `catalog` (output.catalog.database) to its `runs` table."""
    row = (spark.createDataFrame([record.runs_row()], RUNS_SCHEMA)
           .withColumn("dataset", F.lit(record.dataset)))
    row.coalesce(1).write.mode("append").partitionBy("dataset").parquet(
        table_path(output, RUNS))
    if catalog is not None:
        append_catalog_rows(spark, catalog, RUNS, row)

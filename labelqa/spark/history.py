"""Run history: the `runs` table and the comparison with the dataset's previous run."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from labelqa.spark.output import path_exists, table_path

RUNS_SCHEMA = ("run_id string, run_date string, status string, num_examples long, "
               "num_classes int, num_label_issues long, overall_health_score double, "
               "gates_failed array<string>, previous_run_date string, "
               "previous_health_score double, previous_num_label_issues long, "
               "class_noise_changes array<struct<class_name: string, label_noise: double, "
               "previous_label_noise: double, change: double, inverse_label_noise: double, "
               "previous_inverse_label_noise: double, inverse_change: double>>, "
               "started_at timestamp, finished_at timestamp, "
               # set by `labelqa reviews` on the reviewed run's row (null before)
               "reviewed_pairs long, confirmed_pairs long, review_precision double")


@dataclass(frozen=True)
class Comparison:
    previous_run_date: str | None = None
    previous_health_score: float | None = None
    previous_num_label_issues: int | None = None
    class_noise_changes: list[dict] = field(default_factory=list)
    previous_run_id: str | None = None

    def describe(self, health: float, issues: int, run_date: str | None = None) -> str:
        if self.previous_run_date is None:
            return "no previous run of this dataset to compare with"
        moved = ", ".join(f"{c['class_name']} {c['change']:+.4f} (inverse "
                          f"{c['inverse_change']:+.4f})"
                          for c in self.class_noise_changes) or "none"
        which = (f"the run of {self.previous_run_date} this rerun replaces"
                 if self.previous_run_date == run_date else self.previous_run_date)
        return (f"compared with {which}: health "
                f"{self.previous_health_score:.4f} -> {health:.4f} "
                f"({health - self.previous_health_score:+.4f}), label issues "
                f"{self.previous_num_label_issues} -> {issues} "
                f"({issues - self.previous_num_label_issues:+d}); label noise (inverse: "
                f"forgotten tags) moved most: {moved}")


def _read(spark: SparkSession, output: str, table: str) -> DataFrame | None:
    """The table, or None before the first run has written it."""
    path = table_path(output, table)
    if not path_exists(spark, path):
        return None
    try:
        return spark.read.parquet(path)
    except AnalysisException:  # the directory, but no file in it yet
        return None


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
        changes = [row.asDict() for row in moved
                   if row["change"] != 0 or row["inverse_change"] != 0]
    return Comparison(previous_date, previous["overall_health_score"],
                      previous["num_label_issues"], changes, previous["run_id"])


def append_run(spark: SparkSession, output: str, dataset: str, row: dict) -> None:
    """Add this run's row to `runs/dataset=<name>/` (history accumulates; never rewritten)."""
    (spark.createDataFrame([row], RUNS_SCHEMA).withColumn("dataset", F.lit(dataset))
     .coalesce(1).write.mode("append").partitionBy("dataset")
     .parquet(table_path(output, "runs")))

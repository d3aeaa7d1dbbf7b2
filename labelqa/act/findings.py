"""One run's findings, for the commands that act on them (`export`, `queue`, `reviews`): the
run chosen by `--output DIR --dataset NAME [--run-date D]` (the dataset's latest run by
default), its manifest (config, input paths), its class names and its `examples` and
`class_issues` partitions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.config import AuditConfig, config_from_dict
from labelqa.errors import ConfigError, InputError
from labelqa.spark.driver import path_exists, read_text
from labelqa.tables import manifest_path, table_path

#: Manifest statuses whose tables are complete (a gate failure still publishes everything).
USABLE_STATUSES = ("succeeded", "gate_failed")


def partition(spark: SparkSession, output: str, table: str, dataset: str,
              run_date: str) -> DataFrame:
    """One run's rows of `table` (with its `dataset` and `run_date` columns)."""
    return (spark.read.parquet(table_path(output, table))
            .filter((F.col("dataset") == dataset)
                    & (F.col("run_date").cast("string") == run_date)))


def latest_run_date(spark: SparkSession, output: str, dataset: str,
                    run_date: str | None) -> str:
    """The requested run date, or the dataset's latest; a clear error when there is none."""
    if not path_exists(spark, table_path(output, "summary")):
        raise InputError("summary", None, f"no labelqa outputs under {output!r}")
    summary = spark.read.parquet(table_path(output, "summary")).filter(
        F.col("dataset") == dataset)
    if run_date is not None:
        summary = summary.filter(F.col("run_date").cast("string") == run_date)
    latest = summary.agg(F.max(F.col("run_date").cast("string")).alias("d")).first()["d"]
    if latest is None:
        wanted = f" on {run_date}" if run_date else ""
        raise InputError("summary", "run_date", f"no run of dataset {dataset!r}{wanted} under "
                                                f"{output!r}")
    return latest


@dataclass(frozen=True)
class RunFindings:
    output: str
    dataset: str
    run_date: str
    run_id: str
    status: str
    config: AuditConfig  # the run's effective config (secret Spark settings redacted)
    inputs: dict[str, str]  # "labels", "predictions": the paths the run read
    class_names: tuple[str, ...]
    id_type: T.DataType  # of `id` in examples and class_issues: bigint or string
    manifest: dict

    def table(self, spark: SparkSession, name: str) -> DataFrame:
        """This run's partition of an output table, without the partition columns."""
        return partition(spark, self.output, name, self.dataset, self.run_date).drop(
            "dataset", "run_date")

    def examples(self, spark: SparkSession) -> DataFrame:
        return self.table(spark, "examples")

    def class_issues(self, spark: SparkSession) -> DataFrame:
        return self.table(spark, "class_issues")

    def classes(self, spark: SparkSession) -> DataFrame:
        return self.table(spark, "classes")

    @property
    def num_label_issues(self) -> int:
        return int(self.manifest["rows"]["label_issues"])


def read_findings(spark: SparkSession, output: str, dataset: str,
                  run_date: str | None = None) -> RunFindings:
    """The run of `dataset` on `run_date` (default: its latest), checked to be complete."""
    run_date = latest_run_date(spark, output, dataset, run_date)
    path = manifest_path(output, dataset, run_date)
    try:
        text = read_text(spark, path)
    except Exception as error:  # noqa: BLE001 - Py4J wraps the filesystem's error
        reason = str(error).strip().splitlines()[0]
        raise InputError("manifest", None, f"cannot read {path!r}: {reason}") from None
    if text is None:
        raise InputError("manifest", None, f"no manifest at {path!r}: the run of dataset "
                         f"{dataset!r} on {run_date} did not finish; rerun the audit")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError("manifest", None, f"{path!r} is not JSON ({error})") from None
    status = manifest.get("status")
    if status not in USABLE_STATUSES:
        raise InputError("manifest", "status", f"the run of dataset {dataset!r} on {run_date} "
                         f"has status {status!r}; only a run with status "
                         f"{' or '.join(USABLE_STATUSES)} can be used")
    summary = partition(spark, output, "summary", dataset, run_date).select("run_id").first()
    if summary is None or summary["run_id"] != manifest.get("run_id"):
        # the tables were republished by a run that did not reach its manifest
        raise InputError("manifest", "run_id", f"the manifest at {path!r} is of run "
                         f"{manifest.get('run_id')!r} but the tables are of run "
                         f"{summary['run_id'] if summary else None!r}; rerun the audit")
    try:
        config = config_from_dict(manifest["config"])
    except (KeyError, ConfigError) as error:
        raise InputError("manifest", "config", f"cannot rebuild the run's config from "
                         f"{path!r}: {error}") from None
    classes = partition(spark, output, "classes", dataset, run_date)
    names = tuple(row["class_name"] for row in
                  classes.select("class_index", "class_name").orderBy("class_index").collect())
    id_type = partition(spark, output, "examples", dataset, run_date).schema["id"].dataType
    return RunFindings(output, dataset, run_date, manifest["run_id"], status, config,
                       dict(manifest.get("inputs", {})), names, id_type, manifest)

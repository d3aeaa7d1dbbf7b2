"""The public API: run one audit from input paths to written, partitioned output tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from labelqa import __version__
from labelqa.config import AuditConfig
from labelqa.errors import ConfigError
from labelqa.spark.audit import AuditTables, run_audit
from labelqa.spark.inputs import JoinedInput, join_inputs, read_parquet
from labelqa.spark.output import TABLES, table_path, write_manifest, write_partition

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class RunContext:
    """Who and when: passed in, never read inside the transforms."""

    dataset: str
    run_date: str
    run_id: str
    clock: Clock = utc_now


@dataclass(frozen=True)
class RunReport:
    output: str
    dataset: str
    run_date: str
    run_id: str
    num_examples: int
    num_classes: int
    num_label_issues: int
    overall_health_score: float
    manifest: str


def class_names(config: AuditConfig, num_classes: int) -> tuple[str, ...]:
    if config.classes_path is not None:
        try:
            lines = Path(config.classes_path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ConfigError(f"classes_path: cannot read {config.classes_path!r} "
                              f"({error.strerror})") from None
        names = tuple(line.strip() for line in lines if line.strip())
        source = f"classes_path {config.classes_path!r}"
    elif config.classes is not None:
        names, source = config.classes, "classes"
    else:
        return tuple(str(k) for k in range(num_classes))
    if len(names) != num_classes:
        raise ConfigError(f"{source}: {len(names)} class names, but the pred_probs arrays have "
                          f"length K={num_classes}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: class names must be unique")
    return names


def audit_dataframes(spark: SparkSession, labels: DataFrame, predictions: DataFrame,
                     config: AuditConfig) -> tuple[JoinedInput, AuditTables]:
    """Audit two DataFrames; returns the output tables as DataFrames (nothing written).

    Call `tables.release()` when done with them.
    """
    joined = join_inputs(labels, predictions, config)
    names = class_names(config, joined.num_classes)
    return joined, run_audit(spark, joined, config, names)


def summary_frame(spark: SparkSession, joined: JoinedInput, tables: AuditTables,
                  config: AuditConfig, run: RunContext, started_at: dt.datetime) -> DataFrame:
    row = {
        "run_id": run.run_id,
        "num_examples": joined.num_rows,
        "num_classes": joined.num_classes,
        "num_label_issues": tables.num_label_issues,
        "overall_health_score": tables.overall_health_score,
        "labels_rows": joined.labels_rows,
        "predictions_rows": joined.predictions_rows,
        "filter_by": config.issues.filter_by,
        "config_json": config.to_json(),
        "labelqa_version": __version__,
        "spark_version": spark.version,
        "started_at": started_at,
        "finished_at": run.clock(),
    }
    schema = ("run_id string, num_examples long, num_classes int, num_label_issues long, "
              "overall_health_score double, labels_rows long, predictions_rows long, "
              "filter_by string, config_json string, labelqa_version string, "
              "spark_version string, started_at timestamp, finished_at timestamp")
    return spark.createDataFrame([row], schema)


def run_audit_job(spark: SparkSession, labels_path: str, predictions_path: str, output: str,
                  config: AuditConfig, run: RunContext) -> RunReport:
    """Read, audit, write every table's partition, then the manifest (last)."""
    started_at = run.clock()
    labels = read_parquet(spark, labels_path, "labels")
    predictions = read_parquet(spark, predictions_path, "predictions")
    joined, tables = audit_dataframes(spark, labels, predictions, config)
    try:
        for name, df in (("examples", tables.examples), ("class_issues", tables.class_issues),
                         ("classes", tables.classes)):
            write_partition(df, output, name, run.dataset, run.run_date)
        summary = summary_frame(spark, joined, tables, config, run, started_at)
        write_partition(summary, output, "summary", run.dataset, run.run_date)
    finally:
        tables.release()
    manifest = write_manifest(spark, output, run.dataset, run.run_date, {
        "run_id": run.run_id, "status": "succeeded", "dataset": run.dataset,
        "run_date": run.run_date, "config": config.to_json(),
        "inputs": {"labels": labels_path, "predictions": predictions_path},
        "rows": {"labels": joined.labels_rows, "predictions": joined.predictions_rows,
                 "audited": joined.num_rows, "label_issues": tables.num_label_issues},
        "outputs": {name: f"{table_path(output, name)}/dataset={run.dataset}/"
                          f"run_date={run.run_date}" for name in TABLES},
        "versions": {"labelqa": __version__, "spark": spark.version},
        "timings": {"started_at": started_at.isoformat(), "finished_at": run.clock().isoformat()},
    })
    return RunReport(output, run.dataset, run.run_date, run.run_id, joined.num_rows,
                     joined.num_classes, tables.num_label_issues, tables.overall_health_score,
                     manifest)

"""The public API: run one audit from input paths to written, partitioned output tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from labelqa import __version__
from labelqa.config import AuditConfig
from labelqa.spark.audit import AuditTables, run_audit
from labelqa.spark.inputs import JoinedInput, bad_fraction_error, join_inputs, read_parquet
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


def audit_dataframes(spark: SparkSession, labels: DataFrame, predictions: DataFrame,
                     config: AuditConfig) -> tuple[JoinedInput, AuditTables]:
    """Audit two DataFrames; returns the output tables as DataFrames (nothing written).

    Call `tables.release()` and `joined.release()` when done with them.
    """
    joined = join_inputs(labels, predictions, config)
    try:
        return joined, run_audit(spark, joined, config, joined.class_names)
    except Exception:
        joined.release()
        raise


def quarantine_reasons(joined: JoinedInput) -> dict[str, int]:
    """Quarantined rows per `source.reason`."""
    return {f"{source}.{reason}": n
            for source, counts in (("labels", joined.labels), ("predictions", joined.predictions))
            for reason, n in counts.reasons.items()}


def summary_frame(spark: SparkSession, joined: JoinedInput, tables: AuditTables,
                  config: AuditConfig, run: RunContext, started_at: dt.datetime) -> DataFrame:
    row = {
        "run_id": run.run_id,
        "num_examples": joined.num_rows,
        "num_classes": joined.num_classes,
        "num_label_issues": tables.num_label_issues,
        "overall_health_score": tables.overall_health_score,
        "labels_rows": joined.labels.rows,
        "labels_audited": joined.labels.audited,
        "labels_quarantined": joined.labels.quarantined,
        "labels_collapsed": joined.labels.collapsed,
        "predictions_rows": joined.predictions.rows,
        "predictions_audited": joined.predictions.audited,
        "predictions_quarantined": joined.predictions.quarantined,
        "predictions_collapsed": joined.predictions.collapsed,
        "repeated_tags_collapsed": joined.labels.repeated_tags,
        "quarantined_by_reason": quarantine_reasons(joined),
        "filter_by": config.issues.filter_by,
        "config_json": config.to_json(),
        "labelqa_version": __version__,
        "spark_version": spark.version,
        "started_at": started_at,
        "finished_at": run.clock(),
    }
    schema = ("run_id string, num_examples long, num_classes int, num_label_issues long, "
              "overall_health_score double, labels_rows long, labels_audited long, "
              "labels_quarantined long, labels_collapsed long, predictions_rows long, "
              "predictions_audited long, predictions_quarantined long, "
              "predictions_collapsed long, repeated_tags_collapsed long, "
              "quarantined_by_reason map<string, long>, "
              "filter_by string, config_json string, labelqa_version string, "
              "spark_version string, started_at timestamp, finished_at timestamp")
    return spark.createDataFrame([row], schema)


def run_audit_job(spark: SparkSession, labels_path: str, predictions_path: str, output: str,
                  config: AuditConfig, run: RunContext) -> RunReport:
    """Read, audit, write every table's partition, then the manifest (last)."""
    started_at = run.clock()
    labels = read_parquet(spark, labels_path, "labels")
    predictions = read_parquet(spark, predictions_path, "predictions")
    joined = join_inputs(labels, predictions, config)
    try:
        write_partition(joined.quarantine, output, "quarantine", run.dataset, run.run_date)
        too_many_bad = bad_fraction_error(config, joined)
        if too_many_bad is not None:
            raise too_many_bad
        tables = run_audit(spark, joined, config, joined.class_names)
        try:
            for name, df in (("examples", tables.examples),
                             ("class_issues", tables.class_issues),
                             ("classes", tables.classes)):
                write_partition(df, output, name, run.dataset, run.run_date)
            summary = summary_frame(spark, joined, tables, config, run, started_at)
            write_partition(summary, output, "summary", run.dataset, run.run_date)
        finally:
            tables.release()
    finally:
        joined.release()
    manifest = write_manifest(spark, output, run.dataset, run.run_date, {
        "run_id": run.run_id, "status": "succeeded", "dataset": run.dataset,
        "run_date": run.run_date, "config": config.to_json(),
        "inputs": {"labels": labels_path, "predictions": predictions_path},
        "rows": {"labels": dataclasses.asdict(joined.labels),
                 "predictions": dataclasses.asdict(joined.predictions),
                 "audited_examples": joined.num_rows,
                 "label_issues": tables.num_label_issues},
        "outputs": {name: f"{table_path(output, name)}/dataset={run.dataset}/"
                          f"run_date={run.run_date}" for name in TABLES},
        "versions": {"labelqa": __version__, "spark": spark.version},
        "timings": {"started_at": started_at.isoformat(), "finished_at": run.clock().isoformat()},
    })
    return RunReport(output, run.dataset, run.run_date, run.run_id, joined.num_rows,
                     joined.num_classes, tables.num_label_issues, tables.overall_health_score,
                     manifest)

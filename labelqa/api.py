"""The public API: run one audit from input paths to written, partitioned output tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from labelqa import __version__
from labelqa.act.annotators import write_annotators
from labelqa.config import AuditConfig
from labelqa.errors import GateFailed
from labelqa.progress import StageLog, log, redact_uri
from labelqa.spark.audit import AuditTables, run_audit
from labelqa.spark.formats import input_id_type
from labelqa.spark.history import append_run, compare_with_previous
from labelqa.spark.inputs import (
    JoinedInput,
    check_schemas,
    join_inputs,
    read_parquet,
    stop_error,
)
from labelqa.spark.output import (
    OPTIONAL_TABLES,
    TABLES,
    discard,
    manifest_path,
    partition_dir,
    publish,
    refuse_other_id_type,
    staging_root,
    write_manifest,
    write_partition,
    write_text_atomically,
)

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
    status: str = "succeeded"
    gates_failed: list[str] = dataclasses.field(default_factory=list)
    comparison: str = ""
    separation_warning: str | None = None  # the model separates the tags weakly


def audit_dataframes(spark: SparkSession, labels: DataFrame, predictions: DataFrame,
                     config: AuditConfig) -> tuple[JoinedInput, AuditTables]:
    """Audit two DataFrames; returns the output tables as DataFrames (nothing written).

    Call `tables.release()` and `joined.release()` when done with them.
    """
    joined = join_inputs(labels, predictions, config)
    try:
        stopped = stop_error(config, joined)
        if stopped is not None:
            raise stopped
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
        "separation_auc": tables.separation.mean_auc,
        "weak_separation_classes": int(tables.separation.weak.sum()),
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
              "separation_auc double, weak_separation_classes int, "
              "quarantined_by_reason map<string, long>, "
              "filter_by string, config_json string, labelqa_version string, "
              "spark_version string, started_at timestamp, finished_at timestamp")
    return spark.createDataFrame([row], schema)


def evaluate_gates(config: AuditConfig, tables: AuditTables) -> list[str]:
    """The quality gates this run fails, in words (empty: it passes)."""
    gates, failures = config.gates, []
    fraction = tables.num_label_issues / tables.plan.num_rows
    if gates.max_issue_fraction is not None and fraction > gates.max_issue_fraction:
        failures.append(f"issue fraction {fraction:.4f} > gates.max_issue_fraction="
                        f"{gates.max_issue_fraction}")
    health = tables.overall_health_score
    if gates.min_health_score is not None and health < gates.min_health_score:
        failures.append(f"health score {health:.4f} < gates.min_health_score="
                        f"{gates.min_health_score}")
    if gates.max_class_label_noise is not None:
        noise = tables.label_noise
        worst = int(noise.argmax())
        if noise[worst] > gates.max_class_label_noise:
            failures.append(f"label noise of class {tables.class_names[worst]!r} "
                            f"{noise[worst]:.4f} > gates.max_class_label_noise="
                            f"{gates.max_class_label_noise}")
    return failures


def run_audit_job(spark: SparkSession, labels_path: str, predictions_path: str, output: str,
                  config: AuditConfig, run: RunContext) -> RunReport:
    """Read, audit, stage every table, publish them together, then write the manifest.

    Nothing of a failed run becomes visible, except the quarantine table of a run that its
    bad rows stopped (`validation.on_bad_rows=fail`, `validation.max_bad_fraction`, no row
    left to audit): it says which rows, and why. A run that fails a
    quality gate publishes everything, with manifest status `gate_failed`, then raises
    `GateFailed` (exit 3).
    """
    started_at = run.clock()
    stages = StageLog()
    staging = staging_root(output, run.run_id)
    log.info("run %s: dataset=%s run_date=%s output=%s", run.run_id, run.dataset, run.run_date,
             redact_uri(output))
    try:
        with stages.stage("read and check inputs") as info:
            labels = read_parquet(spark, labels_path, "labels")
            predictions = read_parquet(spark, predictions_path, "predictions")
            check_schemas(labels, predictions, config)  # both tables' problems, no job yet
            refuse_other_id_type(spark, output, run.dataset, run.run_date,
                                 input_id_type(labels, predictions, config.input),
                                 config.input.id_column)
            joined = join_inputs(labels, predictions, config)
            info["rows"] = joined.num_rows
            info["note"] = (f"labels {joined.labels.rows} in, {joined.labels.quarantined} "
                            f"quarantined; predictions {joined.predictions.rows} in, "
                            f"{joined.predictions.quarantined} quarantined")
        try:
            with stages.stage("write quarantine") as info:
                write_partition(joined.quarantine, staging, "quarantine", run.dataset,
                                run.run_date)
                info["rows"] = joined.labels.quarantined + joined.predictions.quarantined
            stopped = stop_error(config, joined)
            if stopped is not None:  # the quarantine table says which rows, and why
                publish(spark, staging, output, ("quarantine",), run.dataset, run.run_date)
                raise stopped
            with stages.stage("audit") as info:
                tables = run_audit(spark, joined, config, joined.class_names)
                info["rows"] = joined.num_rows
                info["note"] = f"{tables.num_label_issues} label issues"
            # every table below reads only the audit's (materialized) scored cache: free the
            # intake's disk cache now (at 100M x 40 the two together outgrew the local disk)
            joined.release()
            try:
                for name, df in (("examples", tables.examples),
                                 ("class_issues", tables.class_issues),
                                 ("classes", tables.classes)):
                    with stages.stage(f"write {name}"):
                        write_partition(df, staging, name, run.dataset, run.run_date)
                written = list(TABLES)
                if config.input.annotator_column is not None:
                    with stages.stage("write annotators") as info:
                        info["rows"] = write_annotators(spark, labels, config.input,
                                                        joined.class_names, staging,
                                                        run.dataset, run.run_date)
                    written.append("annotators")
                failures = evaluate_gates(config, tables)
                status = "gate_failed" if failures else "succeeded"
                comparison = compare_with_previous(spark, output, run.dataset, run.run_date,
                                                   tables.classes, run.run_id)
                summary = summary_frame(spark, joined, tables, config, run, started_at)
                write_partition(summary, staging, "summary", run.dataset, run.run_date)
                with stages.stage("publish"):
                    publish(spark, staging, output, (*TABLES, *OPTIONAL_TABLES), run.dataset,
                            run.run_date)
            finally:
                tables.release()
        finally:
            joined.release()
    except BaseException:
        discard(spark, staging)
        raise
    finished_at = run.clock()
    report = RunReport(output, run.dataset, run.run_date, run.run_id, joined.num_rows,
                       joined.num_classes, tables.num_label_issues,
                       tables.overall_health_score, manifest_path(output, run.dataset,
                                                                  run.run_date),
                       status, failures, comparison.describe(tables.overall_health_score,
                                                             tables.num_label_issues,
                                                             run.run_date),
                       tables.separation.warning(tables.class_names,
                                                 tables.num_label_issues / joined.num_rows))
    append_run(spark, output, run.dataset, {
        "run_id": run.run_id, "run_date": run.run_date, "status": status,
        "num_examples": joined.num_rows, "num_classes": joined.num_classes,
        "num_label_issues": tables.num_label_issues,
        "overall_health_score": tables.overall_health_score, "gates_failed": failures,
        "previous_run_date": comparison.previous_run_date,
        "previous_health_score": comparison.previous_health_score,
        "previous_num_label_issues": comparison.previous_num_label_issues,
        "class_noise_changes": comparison.class_noise_changes,
        "started_at": started_at, "finished_at": finished_at})
    write_manifest(spark, output, run.dataset, run.run_date, {
        "run_id": run.run_id, "status": status, "gates_failed": failures,
        "dataset": run.dataset, "run_date": run.run_date, "config": json.loads(config.to_json()),
        "inputs": {"labels": redact_uri(labels_path),
                   "predictions": redact_uri(predictions_path)},
        "rows": {"labels": dataclasses.asdict(joined.labels),
                 "predictions": dataclasses.asdict(joined.predictions),
                 "audited_examples": joined.num_rows,
                 "label_issues": tables.num_label_issues},
        "outputs": {name: partition_dir(output, name, run.dataset, run.run_date)
                    for name in written},
        "comparison": dataclasses.asdict(comparison),
        "versions": {"labelqa": __version__, "spark": spark.version},
        "timings": {"started_at": started_at.isoformat(), "finished_at": finished_at.isoformat(),
                    "stages_seconds": stages.timings},
    })
    if failures:
        raise GateFailed(failures, report)
    return report


def report_path(output: str, dataset: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/_reports/dataset={dataset}/run_date={run_date}.html"


def write_report(spark: SparkSession, output: str, dataset: str, run_date: str | None = None,
                 destination: str | None = None, clock: Clock = utc_now,
                 max_examples: int = 25) -> str:
    """Render one run's HTML report (the dataset's latest run by default); returns its path.

    Written next to the tables by default, through Hadoop's FileSystem (any URI)."""
    from labelqa.report.gather import gather_report
    from labelqa.report.render import render_html

    data = gather_report(spark, output, dataset, run_date,
                         clock().isoformat(timespec="seconds"), max_examples)
    path = destination or report_path(output, dataset, data.run_date)
    write_text_atomically(spark, path, render_html(data, max_examples=max_examples))
    return path

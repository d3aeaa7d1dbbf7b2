"""The public API: audit two DataFrames (or two Parquet paths) into written, partitioned
output tables, and render a run's report."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from labelqa import __version__
from labelqa.act.annotators import write_annotators
from labelqa.config import AuditConfig
from labelqa.errors import GateFailed
from labelqa.progress import StageLog, log, redact_uri
from labelqa.record import Comparison, RunRecord
from labelqa.spark.audit import AuditFiles, AuditTables, TaskWrittenTable, run_audit
from labelqa.spark.driver import delete, qualified, write_text_atomically
from labelqa.spark.formats import input_id_type
from labelqa.spark.history import append_run, compare_with_previous
from labelqa.spark.inputs import (
    JoinedInput,
    check_schemas,
    join_inputs,
    read_input,
    stop_error,
)
from labelqa.spark.output import (
    discard,
    publish,
    refuse_other_id_type,
    write_manifest,
    write_partition,
)
from labelqa.spark.task_files import local_path
from labelqa.tables import (
    ID_TABLES,
    OPTIONAL_TABLES,
    SUMMARY,
    TABLES,
    manifest_path,
    partition_dir,
    report_path,
    staging_root,
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


#: What an audit run returns (and `GateFailed.report` carries): the run's record.
RunReport = RunRecord


class AuditResult(NamedTuple):
    """The joined input and the audit's tables (DataFrames, not written)."""

    joined: JoinedInput
    tables: AuditTables


@contextmanager
def audit_dataframes(spark: SparkSession, labels: DataFrame, predictions: DataFrame,
                     config: AuditConfig) -> Iterator[AuditResult]:
    """Audit two DataFrames; the output tables as DataFrames, nothing written:

        with audit_dataframes(spark, labels, predictions, config) as (joined, tables):
            tables.examples.show()

    On leaving the block the caches are freed and the session's settings restored.
    """
    with join_inputs(labels, predictions, config) as joined:
        stopped = stop_error(config, joined)
        if stopped is not None:
            raise stopped
        with run_audit(spark, joined, config) as tables:
            yield AuditResult(joined, tables)


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
                  config: AuditConfig, run: RunContext,
                  class_notes: Mapping[str, str] | None = None,
                  inputs: Mapping[str, str] | None = None) -> RunReport:
    """The CLI's audit: read both Parquet inputs, then `publish_audit` them. `inputs`: more
    of what was read, for the manifest (`audit --features`: the features)."""
    labels = read_input(spark, labels_path, "labels")
    predictions = read_input(spark, predictions_path, "predictions")
    return publish_audit(spark, labels, predictions, output, config, run,
                         {"labels": redact_uri(labels_path),
                          "predictions": redact_uri(predictions_path), **(inputs or {})},
                         class_notes)


def publish_audit(spark: SparkSession, labels: DataFrame, predictions: DataFrame, output: str,
                  config: AuditConfig, run: RunContext,
                  inputs: Mapping[str, str] | None = None,
                  class_notes: Mapping[str, str] | None = None) -> RunReport:
    """Audit two DataFrames into `output`: stage every table, publish them together, append
    the run history, then write the manifest (what the CLI does with its two paths).

    Nothing of a failed run becomes visible, except the quarantine table of a run that its
    bad rows stopped (`validation.on_bad_rows=fail`, `validation.max_bad_fraction`, no row
    left to audit): it says which rows, and why. A run that fails a quality gate publishes
    everything, with manifest status `gate_failed`, then raises `GateFailed` (exit 3).
    `inputs` names what was read, for the manifest (default: "DataFrame"); `class_notes`
    adds a note to classes of the `classes` table by name (labelqa predict's weak classes).
    """
    started_at = run.clock()
    stages = StageLog()
    staging = staging_root(output, run.run_id)
    log.info("run %s: dataset=%s run_date=%s output=%s", run.run_id, run.dataset, run.run_date,
             redact_uri(output))
    try:
        with ExitStack() as resources:
            joined = resources.enter_context(
                _checked_join(spark, labels, predictions, output, config, run, stages))
            _stage_quarantine(spark, joined, config, staging, output, run, stages)
            with stages.stage("audit") as info:
                files = task_files(spark, staging, run)
                tables = resources.enter_context(run_audit(spark, joined, config, files))
                info["rows"] = joined.num_rows
                info["note"] = f"{tables.num_label_issues} label issues"
            # every table below reads only the audit's (materialized) scored cache: free the
            # intake's disk cache now (at 100M x 40 the two together outgrew the local disk)
            joined.release()
            written = _stage_tables(spark, labels, joined, tables, config, staging, run, stages,
                                    class_notes or {})
            failures = evaluate_gates(config, tables)
            comparison = compare_with_previous(spark, output, run.dataset, run.run_date,
                                               tables.classes, run.run_id)
            record = _record(spark, joined, tables, config, run, output, inputs, written,
                             failures, comparison, started_at)
            write_partition(spark.createDataFrame([record.summary_row()], SUMMARY), staging,
                            "summary", run.dataset, run.run_date)
            with stages.stage("publish"):
                publish(spark, staging, output, (*TABLES, *OPTIONAL_TABLES), run.dataset,
                        run.run_date, config.output.catalog.database)
    except BaseException:
        discard(spark, staging)
        raise
    record = dataclasses.replace(record, finished_at=run.clock(),
                                 stages_seconds=dict(stages.timings))
    append_run(spark, output, record, config.output.catalog.database)
    write_manifest(spark, output, run.dataset, run.run_date, record.manifest_document())
    if record.gates_failed:
        raise GateFailed(list(record.gates_failed), record)
    return record


def _checked_join(spark: SparkSession, labels: DataFrame, predictions: DataFrame, output: str,
                  config: AuditConfig, run: RunContext, stages: StageLog) -> JoinedInput:
    """Both tables' schema problems (no job yet), the output's id type, then the intake."""
    with stages.stage("read and check inputs") as info:
        check_schemas(labels, predictions, config)
        refuse_other_id_type(spark, output, run.dataset, run.run_date,
                             input_id_type(labels, predictions, config.input),
                             config.input.id_column)
        joined = join_inputs(labels, predictions, config, schemas_checked=True)
        info["rows"] = joined.num_rows
        info["note"] = (f"labels {joined.labels.rows} in, {joined.labels.quarantined} "
                        f"quarantined; predictions {joined.predictions.rows} in, "
                        f"{joined.predictions.quarantined} quarantined")
    return joined


def _stage_quarantine(spark: SparkSession, joined: JoinedInput, config: AuditConfig,
                      staging: str, output: str, run: RunContext, stages: StageLog) -> None:
    """Stage the quarantine table; when the bad rows stop the run, publish it alone (it says
    which rows, and why) and raise."""
    with stages.stage("write quarantine") as info:
        write_partition(joined.quarantine, staging, "quarantine", run.dataset, run.run_date)
        info["rows"] = joined.labels.quarantined + joined.predictions.quarantined
    stopped = stop_error(config, joined)
    if stopped is not None:
        publish(spark, staging, output, ("quarantine",), run.dataset, run.run_date,
                config.output.catalog.database)
        raise stopped


def task_files(spark: SparkSession, staging: str, run: RunContext) -> AuditFiles | None:
    """The local staging directories the audit's tasks write `examples` and `class_issues`
    into (labelqa.spark.task_files), or None (Spark writes them) when staging is not on the
    local file system."""
    directories = {}
    for table in ID_TABLES:
        directory = partition_dir(staging, table, run.dataset, run.run_date)
        local = local_path(qualified(spark, directory))
        if local is None:
            return None
        delete(spark, directory)
        directories[table] = local
    return AuditFiles(**directories)


def _stage_tables(spark: SparkSession, labels: DataFrame, joined: JoinedInput,
                  tables: AuditTables, config: AuditConfig, staging: str, run: RunContext,
                  stages: StageLog, class_notes: Mapping[str, str]) -> tuple[str, ...]:
    """Stage the audit's tables (and `annotators` when configured); the tables written."""
    for name, table in (("examples", tables.examples), ("class_issues", tables.class_issues),
                        ("classes", with_notes(tables.classes, class_notes))):
        with stages.stage(f"write {name}"):
            if isinstance(table, TaskWrittenTable):
                table.finish()
            else:
                write_partition(table, staging, name, run.dataset, run.run_date)
    if config.input.annotator_column is None:
        return TABLES
    with stages.stage("write annotators") as info:
        info["rows"] = write_annotators(spark, labels, config.input, joined.class_names,
                                        staging, run.dataset, run.run_date)
    return (*TABLES, "annotators")


def with_notes(classes: DataFrame, notes: Mapping[str, str]) -> DataFrame:
    """The `classes` table with `notes` added (after a note it already has) by class name."""
    if not notes:
        return classes
    extra = F.element_at(F.create_map(*[F.lit(x) for pair in notes.items() for x in pair]),
                         F.col("class_name"))
    return classes.withColumn("note", F.when(extra.isNull(), F.col("note")).otherwise(
        F.concat_ws("; ", F.col("note"), extra)))


def _record(spark: SparkSession, joined: JoinedInput, tables: AuditTables, config: AuditConfig,
            run: RunContext, output: str, inputs: Mapping[str, str] | None,
            written: tuple[str, ...], failures: list[str], comparison: Comparison,
            started_at: dt.datetime) -> RunRecord:
    """The run's record, once every fact but the finishing time is known."""
    return RunRecord(
        output=output, dataset=run.dataset, run_date=run.run_date, run_id=run.run_id,
        status="gate_failed" if failures else "succeeded", gates_failed=tuple(failures),
        num_examples=joined.num_rows, num_classes=joined.num_classes,
        num_label_issues=tables.num_label_issues,
        overall_health_score=tables.overall_health_score,
        labels=joined.labels, predictions=joined.predictions,
        separation_auc=tables.separation.mean_auc,
        weak_separation_classes=int(tables.separation.weak.sum()),
        separation_warning=tables.separation.warning(
            tables.class_names, tables.num_label_issues / joined.num_rows),
        comparison=comparison, filter_by=config.issues.filter_by,
        config_json=config.to_json(),
        inputs=dict(inputs) if inputs is not None else {"labels": "DataFrame",
                                                         "predictions": "DataFrame"},
        outputs={name: partition_dir(output, name, run.dataset, run.run_date)
                 for name in written},
        manifest=manifest_path(output, run.dataset, run.run_date),
        labelqa_version=__version__, spark_version=spark.version,
        started_at=started_at, finished_at=run.clock())


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

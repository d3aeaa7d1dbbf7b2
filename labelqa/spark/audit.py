"""The audit as DataFrame -> DataFrame steps around the NumPy core (see labelqa.core.plan)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from labelqa.config import AuditConfig
from labelqa.core import flags as fl
from labelqa.core.plan import (
    AuditPlan,
    audit_batch,
    class_notes,
    joint_partials,
    plan_from,
    selection_layout,
    threshold_partials,
    thresholds_from,
)
from labelqa.spark.arrow import batch_of, list_column, matrix_column
from labelqa.spark.caching import cached
from labelqa.spark.explanation import explanation_column
from labelqa.spark.inputs import JoinedInput
from labelqa.spark.partials import collect_partials, partial_sums
from labelqa.spark.ranking import global_rank
from labelqa.spark.selection import find_cuts, histogram_partials, histogram_shapes

ISSUE_COLUMNS = ("issue_classes", "issue_given", "issue_pred_probs", "issue_class_scores")


@dataclass(frozen=True)
class AuditTables:
    """The audit's result: the DataFrames of the output tables (not yet written) and the plan."""

    examples: DataFrame
    class_issues: DataFrame
    classes: DataFrame
    plan: AuditPlan
    num_label_issues: int
    persisted: tuple[DataFrame, ...]
    names: tuple[str, ...] = ()
    label_issues: np.ndarray | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.names

    @property
    def label_noise(self) -> np.ndarray:
        """Per-class label noise (flagged annotated examples / N), as in the classes table."""
        return self.label_issues / self.plan.num_rows

    @property
    def overall_health_score(self) -> float:
        return 1.0 - self.num_label_issues / self.plan.num_rows

    def release(self) -> None:
        for df in self.persisted:
            df.unpersist()


def _records_per_batch(num_classes: int) -> int:
    """Arrow batch size: large batches for NumPy speed, bounded memory for wide K."""
    return int(min(20_000, max(500, 2_000_000 // num_classes)))


def run_audit(spark: SparkSession, joined: JoinedInput, config: AuditConfig,
              class_names: tuple[str, ...]) -> AuditTables:
    num_classes, num_rows = joined.num_classes, joined.num_rows
    batch_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    if batch_key not in config.spark.conf:
        spark.conf.set(batch_key, str(_records_per_batch(num_classes)))
    rows = joined.rows

    threshold_totals = collect_partials(
        partial_sums(rows, num_classes, threshold_partials),
        {"num_given": (num_classes,), "given_limbs": (3, num_classes),
         "not_given_limbs": (3, num_classes)})
    thresholds = thresholds_from(threshold_totals, num_rows, joined.single_precision)
    num_given = threshold_totals["num_given"]
    judged = np.array([n is None for n in class_notes(num_given, num_rows,
                                                       config.issues.filter_by)])
    layout = selection_layout(num_rows, num_given, config.issues)

    def joint_and_histograms(batch):
        return {**joint_partials(batch, thresholds, judged), **histogram_partials(batch, layout)}

    shapes = {"raw_joint": (num_classes, 2, 2), "cl_flags": (num_classes,), "cl_rows": (1,),
              **histogram_shapes(layout, num_classes)}
    totals = collect_partials(partial_sums(rows, num_classes, joint_and_histograms), shapes)
    plan = plan_from(num_rows, thresholds, num_given, totals, config.scoring, config.issues)
    id_dtype = np.dtype(np.int64) if joined.id_type.typeName() == "long" else np.dtype(object)
    cuts = find_cuts(spark, rows, num_classes, plan.selections, totals, joined.id_type, id_dtype)

    scored = score_rows(rows, plan, cuts, joined, config.output.class_scores)
    scored = cached(scored)
    counts = scored.agg(F.count(F.lit(1)).alias("rows"),
                        F.count_if("is_label_issue").alias("issues")).first()
    if counts["rows"] != num_rows:  # pragma: no cover - a broken invariant, never bad input
        raise RuntimeError(f"scored {counts['rows']} rows out of {num_rows}")
    class_issues = class_issue_rows(scored, class_names)
    label_issues, inverse = class_counts(class_issues, num_classes)
    classes = class_table(spark, plan, label_issues, inverse, class_names)
    examples = example_rows(scored, config.output.class_scores,
                            explanation_column(class_names, thresholds.given,
                                               thresholds.not_given))
    return AuditTables(examples, class_issues, classes, plan, int(counts["issues"]),
                       (scored,), class_names, label_issues)


def score_rows(rows: DataFrame, plan: AuditPlan, cuts: dict[str, fl.Cut], joined: JoinedInput,
               with_class_scores: bool) -> DataFrame:
    num_classes = plan.num_classes
    id_type = joined.id_type.simpleString()
    schema = (f"id {id_type}, given_labels array<int>, label_quality_score double, "
              "is_label_issue boolean, suggested_labels array<int>, num_class_issues int, "
              "issue_classes array<int>, issue_given array<boolean>, "
              "issue_pred_probs array<double>, issue_class_scores array<double>")
    if with_class_scores:
        schema += ", class_scores array<double>"

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for record_batch in batches:
            if record_batch.num_rows == 0:
                continue
            batch = batch_of(record_batch, num_classes)
            result = audit_batch(batch, plan, cuts)
            flags = result.class_flags
            columns = {
                "id": record_batch.column("id"),
                "given_labels": list_column(batch.given),
                "label_quality_score": pa.array(result.label_quality_score, type=pa.float64()),
                "is_label_issue": pa.array(result.is_label_issue),
                "suggested_labels": list_column(batch.given ^ flags),
                "num_class_issues": pa.array(flags.sum(axis=1).astype(np.int32)),
                "issue_classes": list_column(flags),
                "issue_given": list_column(flags, batch.given, pa.bool_()),
                "issue_pred_probs": list_column(flags, batch.probs.astype(np.float64),
                                                pa.float64()),
                "issue_class_scores": list_column(flags, result.class_scores, pa.float64()),
            }
            if with_class_scores:
                columns["class_scores"] = matrix_column(result.class_scores)
            yield pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))

    return rows.mapInArrow(score, schema)


def class_issue_rows(scored: DataFrame, class_names: tuple[str, ...]) -> DataFrame:
    names = F.array(*[F.lit(name) for name in class_names])
    zipped = F.arrays_zip(*[F.col(c) for c in ISSUE_COLUMNS])
    return (scored.filter(F.col("num_class_issues") > 0)
            .select("id", F.inline(zipped))
            .select("id", F.col("issue_classes").alias("class_index"),
                    F.element_at(names, F.col("issue_classes") + 1).alias("class_name"),
                    F.col("issue_given").alias("given"),
                    F.col("issue_pred_probs").alias("pred_prob"),
                    F.col("issue_class_scores").alias("class_score")))


def example_rows(scored: DataFrame, with_class_scores: bool, explanation: Column) -> DataFrame:
    ranks = global_rank(scored.filter("is_label_issue").select("id", "label_quality_score"),
                        "label_quality_score", "id", "issue_rank")
    columns = ["id", "given_labels", "label_quality_score", "is_label_issue", "issue_rank",
               "suggested_labels", "num_class_issues", explanation.alias("explanation")]
    if with_class_scores:
        columns.append("class_scores")
    return (scored.join(ranks.select("id", "issue_rank"), "id", "left").select(*columns))


def class_counts(class_issues: DataFrame, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Flagged pairs per class: annotated (label issues) and not annotated (inverse)."""
    counts = (class_issues.groupBy("class_index")
              .agg(F.count_if("given").alias("given"),
                   F.count_if(~F.col("given")).alias("missing"))
              .collect())
    label_issues = np.zeros(num_classes, dtype=np.int64)
    inverse = np.zeros(num_classes, dtype=np.int64)
    for row in counts:
        label_issues[row["class_index"]] = row["given"]
        inverse[row["class_index"]] = row["missing"]
    return label_issues, inverse


def class_table(spark: SparkSession, plan: AuditPlan, label_issues: np.ndarray,
                inverse: np.ndarray, class_names: tuple[str, ...]) -> DataFrame:
    """One row per class: counts, thresholds, calibrated joint, noise (K rows, built on the
    driver from K-sized aggregates)."""
    joint = plan.calibrated_joint
    noise = label_issues / plan.num_rows
    table = pd.DataFrame({
        "class_index": np.arange(plan.num_classes, dtype=np.int32),
        "class_name": list(class_names),
        "num_given": plan.num_given.astype(np.int64),
        "threshold_given": plan.thresholds.given,
        "threshold_not_given": plan.thresholds.not_given,
        "cj_given_given": joint[:, 1, 1], "cj_given_not": joint[:, 1, 0],
        "cj_not_given": joint[:, 0, 1], "cj_not_not": joint[:, 0, 0],
        "label_issues": label_issues, "inverse_label_issues": inverse,
        "label_noise": noise, "inverse_label_noise": inverse / plan.num_rows,
        "label_quality_score": 1.0 - noise,
        "note": list(plan.notes),
    })
    schema = ("class_index int, class_name string, num_given long, threshold_given double, "
              "threshold_not_given double, cj_given_given long, cj_given_not long, "
              "cj_not_given long, cj_not_not long, label_issues long, "
              "inverse_label_issues long, label_noise double, inverse_label_noise double, "
              "label_quality_score double, note string")
    return spark.createDataFrame(table, schema)


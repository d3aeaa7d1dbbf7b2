"""The audit as DataFrame -> DataFrame steps around the NumPy core (see labelqa.core.plan)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
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
    thresholds_from,
)
from labelqa.spark import blocks as bl
from labelqa.spark.caching import cached
from labelqa.spark.explanation import EXPLANATION_DDL, Vocabulary, explanations
from labelqa.spark.inputs import JoinedInput
from labelqa.spark.intake import as_array, statistics
from labelqa.spark.partials import collect_partials, partial_sums
from labelqa.spark.ranking import RANK_BINS, RankRanges, rank_bins, ranks_within
from labelqa.spark.selection import find_cuts, histogram_partials, histogram_shapes

PASS_SCHEMA = "kind byte, block binary, name string, position long, value long"


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


def run_audit(spark: SparkSession, joined: JoinedInput, config: AuditConfig,
              class_names: tuple[str, ...]) -> AuditTables:
    """Thresholds (from the intake's sums), joint and histograms, selection cuts, then one
    scoring pass whose blocks every output table is built from."""
    num_classes, num_rows = joined.num_classes, joined.num_rows
    blocks = joined.blocks
    totals_in = joined.threshold_totals
    thresholds = thresholds_from(totals_in, num_rows, joined.single_precision)
    num_given = totals_in["num_given"]
    judged = np.array([n is None for n in class_notes(num_given, num_rows,
                                                       config.issues.filter_by)])
    layout = selection_layout(num_rows, num_given, config.issues)

    def joint_and_histograms(batch):
        return {**joint_partials(batch, thresholds, judged), **histogram_partials(batch, layout)}

    shapes = {"raw_joint": (num_classes, 2, 2), "cl_flags": (num_classes,), "cl_rows": (1,),
              **histogram_shapes(layout, num_classes)}
    totals = collect_partials(partial_sums(blocks, joint_and_histograms), shapes)
    plan = plan_from(num_rows, thresholds, num_given, totals, config.scoring, config.issues)
    id_dtype = np.dtype(np.int64) if joined.id_type.typeName() == "long" else np.dtype(object)
    cuts = find_cuts(spark, blocks, num_classes, plan.selections, totals, joined.id_type,
                     id_dtype)

    vocabulary = Vocabulary.of(class_names, thresholds.given, thresholds.not_given)
    scored = cached(score_blocks(blocks, plan, cuts, vocabulary, config.output.class_scores))
    found = statistics(scored)
    scored_rows = int(as_array(found, "rows", (1,))[0])
    if scored_rows != num_rows:  # pragma: no cover - a broken invariant, never bad input
        scored.unpersist()
        raise RuntimeError(f"scored {scored_rows} rows out of {num_rows}")
    label_issues = as_array(found, "label_issues", (num_classes,))
    inverse = as_array(found, "inverse_label_issues", (num_classes,))
    scored_blocks = scored.filter(F.col("kind") == bl.BLOCK).select("block")
    class_issues = class_issue_rows(scored_blocks, class_names, joined.id_type.simpleString())
    classes = class_table(spark, plan, label_issues, inverse, class_names)
    examples = example_rows(scored_blocks, as_array(found, "rank_bins", (RANK_BINS,)),
                            joined.id_type.simpleString(), config.output.class_scores)
    return AuditTables(examples, class_issues, classes, plan,
                       int(as_array(found, "issues", (1,))[0]), (scored,), class_names,
                       label_issues)


def scored_block(batch, plan: AuditPlan, cuts: dict[str, fl.Cut], vocabulary: Vocabulary,
                 ids: pa.Array, with_class_scores: bool) -> tuple[pa.RecordBatch, dict]:
    """One examples block scored and flagged: the columns of the examples table (but
    `issue_rank`) and the flagged pairs; and its statistics."""
    result = audit_batch(batch, plan, cuts)
    flags = result.class_flags
    # the flagged pairs once, in row order: every issue_* list and the explanation share them
    rows, classes = np.nonzero(flags)
    offsets = np.zeros(batch.num_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=batch.num_rows), out=offsets[1:])
    given = batch.given[rows, classes]
    probs = batch.probs[rows, classes].astype(np.float64)

    def per_row(values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=value_type))

    columns = {
        "id": ids,
        "given_labels": bl.list_column(batch.given),
        "label_quality_score": pa.array(result.label_quality_score, type=pa.float64()),
        "is_label_issue": pa.array(result.is_label_issue),
        "suggested_labels": bl.list_column(batch.given ^ flags),
        "num_class_issues": pa.array(np.diff(offsets)),
        "explanation": explanations(vocabulary, result.is_label_issue,
                                    result.label_quality_score, rows, classes, given, probs),
        "issue_classes": per_row(classes.astype(np.int32), pa.int32()),
        "issue_given": per_row(given, pa.bool_()),
        "issue_pred_probs": per_row(probs, pa.float64()),
        "issue_class_scores": per_row(result.class_scores[rows, classes], pa.float64()),
    }
    if with_class_scores:
        columns["class_scores"] = bl.matrix_column(result.class_scores)
    flagged_scores = result.label_quality_score[result.is_label_issue]
    stats = {
        "rows": np.array([batch.num_rows]),
        "issues": np.array([int(result.is_label_issue.sum())]),
        "label_issues": np.bincount(classes[given], minlength=batch.num_classes),
        "inverse_label_issues": np.bincount(classes[~given], minlength=batch.num_classes),
        "rank_bins": np.bincount(rank_bins(flagged_scores), minlength=RANK_BINS),
    }
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns)), stats


def score_blocks(blocks: DataFrame, plan: AuditPlan, cuts: dict[str, fl.Cut],
                 vocabulary: Vocabulary, with_class_scores: bool) -> DataFrame:
    """The scoring pass: a scored block per examples block, and the pass's statistics."""
    schema = pa.schema([("kind", pa.int8()), ("block", pa.binary()),
                        ("name", pa.string()), ("position", pa.int64()), ("value", pa.int64())])

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        totals: dict[str, np.ndarray] = {}
        for block in bl.blocks_of(batches):
            scored, stats = scored_block(bl.batch_of(block), plan, cuts, vocabulary,
                                         block.column(bl.ID), with_class_scores)
            bl.add_totals(totals, stats)
            yield pa.RecordBatch.from_arrays(
                [pa.array([bl.BLOCK], pa.int8()), pa.array([bl.encode(scored)], pa.binary()),
                 pa.nulls(1, pa.string()), pa.nulls(1, pa.int64()), pa.nulls(1, pa.int64())],
                schema=schema)
        names, positions, values = bl.statistic_rows(totals)
        if names:
            yield pa.RecordBatch.from_arrays(
                [pa.array(np.full(len(names), bl.STATISTIC, np.int8)),
                 pa.nulls(len(names), pa.binary()),
                 pa.array(names, pa.string()), pa.array(positions, pa.int64()),
                 pa.array(values, pa.int64())], schema=schema)

    return blocks.mapInArrow(score, PASS_SCHEMA)


CLASS_ISSUE_COLUMNS = ("issue_classes", "issue_given", "issue_pred_probs", "issue_class_scores")


def class_issue_rows(scored_blocks: DataFrame, class_names: tuple[str, ...], id_type: str
                     ) -> DataFrame:
    """One row per flagged (example, class) pair, from the scored blocks."""
    schema = (f"id {id_type}, class_index int, class_name string, given boolean, "
              "pred_prob double, class_score double")
    names = pa.array(class_names, pa.string())

    def explode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for block in bl.blocks_of(batches):
            classes = block.column("issue_classes")
            if len(classes.values) == 0:
                continue
            rows = pc.list_parent_indices(classes)
            index = classes.values
            yield pa.RecordBatch.from_arrays(
                [block.column(bl.ID).take(rows), index, names.take(index),
                 block.column("issue_given").values, block.column("issue_pred_probs").values,
                 block.column("issue_class_scores").values],
                names=["id", "class_index", "class_name", "given", "pred_prob",
                       "class_score"])

    return scored_blocks.mapInArrow(explode, schema)


EXAMPLE_COLUMNS = ("id", "given_labels", "label_quality_score", "is_label_issue", "issue_rank",
                   "suggested_labels", "num_class_issues", "explanation")


def example_rows(scored_blocks: DataFrame, rank_counts: np.ndarray, id_type: str,
                 with_class_scores: bool) -> DataFrame:
    """The examples table: the unflagged rows straight from their scored blocks, the flagged
    ones ranked by range (labelqa.spark.ranking); one write job."""
    columns = list(EXAMPLE_COLUMNS) + (["class_scores"] if with_class_scores else [])
    schema = (f"id {id_type}, given_labels array<int>, label_quality_score double, "
              "is_label_issue boolean, issue_rank int, suggested_labels array<int>, "
              f"num_class_issues int, explanation {EXPLANATION_DDL}")
    if with_class_scores:
        schema += ", class_scores array<double>"
    ranges = RankRanges.of(rank_counts)

    def rows_of(block: pa.RecordBatch, chosen: np.ndarray, rank: np.ndarray | None
                ) -> pa.RecordBatch:
        picked = block.take(pa.array(chosen))
        ranks = (pa.nulls(len(chosen), pa.int32()) if rank is None
                 else pa.array(rank, pa.int32()))
        return pa.RecordBatch.from_arrays(
            [ranks if c == "issue_rank" else picked.column(c) for c in columns], names=columns)

    def unflagged(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for block in bl.blocks_of(batches):
            issue = block.column("is_label_issue").to_numpy(zero_copy_only=False)
            chosen = np.flatnonzero(~issue)
            if len(chosen):
                yield rows_of(block, chosen, None)

    def by_range(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for block in bl.blocks_of(batches):
            issue = block.column("is_label_issue").to_numpy(zero_copy_only=False)
            chosen = np.flatnonzero(issue)
            if not len(chosen):
                continue
            flagged = block.take(pa.array(chosen))
            of_row = ranges.ranges(flagged.column("label_quality_score").to_numpy())
            for number in np.unique(of_row):
                part = flagged.take(pa.array(np.flatnonzero(of_row == number)))
                yield pa.RecordBatch.from_arrays(
                    [pa.array([number], pa.int32()), pa.array([bl.encode(part)], pa.binary())],
                    names=["range", "block"])

    def ranked(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        members: dict[int, list[pa.RecordBatch]] = {}
        for record_batch in batches:
            for number, value in zip(record_batch.column("range").to_pylist(),
                                     record_batch.column("block")):
                members.setdefault(number, []).append(bl.decode(value.as_buffer()))
        for number in sorted(members):
            table = pa.Table.from_batches(members.pop(number)).combine_chunks()
            block = table.to_batches()[0]
            rank = ranks_within(block.column("label_quality_score").to_numpy(),
                                bl.ids_of(block.column(bl.ID)), int(ranges.offsets[number]))
            yield rows_of(block, np.arange(block.num_rows), rank)

    flagged_rows = (scored_blocks.mapInArrow(by_range, "range int, block binary")
                    .repartition(ranges.count, "range").mapInArrow(ranked, schema))
    return scored_blocks.mapInArrow(unflagged, schema).unionByName(flagged_rows)


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


"""The audit as DataFrame -> DataFrame steps around the NumPy core (see labelqa.core.plan)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from labelqa.config import AuditConfig
from labelqa.core import flags as fl
from labelqa.core.plan import (
    AuditPlan,
    audit_batch,
    joint_partials,
    plan_from,
    selection_layout,
    thresholds_from,
)
from labelqa.core.separation import (
    Separation,
    separation_bins,
    separation_partials,
    separation_shapes,
)
from labelqa.core.summaries import ClassQuality, health_score
from labelqa.spark import blocks as bl
from labelqa.spark.caching import cached
from labelqa.spark.explanation import Vocabulary
from labelqa.spark.flagged import compact, finished
from labelqa.spark.inputs import JoinedInput
from labelqa.spark.intake import as_array, statistics
from labelqa.spark.partials import collect_partials, partial_sums
from labelqa.spark.ranking import RANK_BINS, RankRanges, range_rows, rank_bins, ranks_within
from labelqa.spark.selection import find_cuts, histogram_partials, histogram_shapes
from labelqa.spark.task_files import TaskFiles, finish_directory
from labelqa.tables import CLASSES, class_issues_schema, examples_schema


@dataclass(frozen=True)
class TaskWrittenTable:
    """An output table the audit's tasks write themselves (labelqa.spark.task_files):
    `finish()` runs the job left to write (if any), checks its rows, and tidies the
    directory."""

    files: TaskFiles
    job: DataFrame | None = None  # one row per task: `rows` written
    expected_rows: int = 0

    def finish(self) -> None:
        if self.job is not None:
            written = int(self.job.agg(F.sum("rows")).first()[0] or 0)
            if written != self.expected_rows:  # pragma: no cover - a broken invariant
                raise RuntimeError(f"wrote {written} rows of {self.files.directory}, "
                                   f"expected {self.expected_rows}")
        finish_directory(self.files)


@dataclass(frozen=True)
class AuditTables:
    """The audit's result: the DataFrames of the output tables (not yet written) and the plan;
    with `files` (run_audit), `examples` and `class_issues` are tables the tasks write
    themselves.

    A context manager: leaving it frees the scored cache every table reads."""

    examples: DataFrame | TaskWrittenTable
    class_issues: DataFrame | TaskWrittenTable
    classes: DataFrame
    plan: AuditPlan
    class_names: tuple[str, ...]
    num_label_issues: int
    label_issues: np.ndarray  # flagged annotated examples per class
    separation: Separation
    persisted: tuple[DataFrame, ...]

    @property
    def label_noise(self) -> np.ndarray:
        """Per-class label noise (flagged annotated examples / N), as in the classes table."""
        return self.label_issues / self.plan.num_rows

    @property
    def overall_health_score(self) -> float:
        return health_score(self.num_label_issues, self.plan.num_rows)

    def release(self) -> None:
        for df in self.persisted:
            df.unpersist()

    def __enter__(self) -> AuditTables:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def run_audit(spark: SparkSession, joined: JoinedInput, config: AuditConfig,
              files: AuditFiles | None = None) -> AuditTables:
    """Thresholds (from the intake's sums), joint and histograms, selection cuts, then one
    scoring pass whose blocks every output table is built from. With `files` (local
    directories) the tasks write `examples` and `class_issues` there themselves."""
    num_classes, num_rows = joined.num_classes, joined.num_rows
    class_names = joined.class_names
    blocks = joined.blocks
    totals_in = joined.threshold_totals
    thresholds = thresholds_from(totals_in, num_rows, joined.single_precision)
    num_given = totals_in["num_given"]
    judged = config.issues.filter.judged(num_given, num_rows)
    layout = selection_layout(num_rows, num_given, config.issues)

    bins = separation_bins(num_classes)

    def joint_and_histograms(batch):
        return {**joint_partials(batch, thresholds, judged), **histogram_partials(batch, layout),
                **separation_partials(batch, bins)}

    shapes = {"raw_joint": (num_classes, 2, 2), "cl_flags": (num_classes,), "cl_rows": (1,),
              **histogram_shapes(layout, num_classes), **separation_shapes(num_classes)}
    totals = collect_partials(partial_sums(blocks, joint_and_histograms), shapes)
    separation = Separation.of(totals["separation"])
    plan = plan_from(num_rows, thresholds, num_given, totals, config.scoring, config.issues)
    id_dtype = np.dtype(np.int64) if joined.id_type.typeName() == "long" else np.dtype(object)
    cuts = find_cuts(spark, blocks, num_classes, plan.selections, totals, joined.id_type,
                     id_dtype)

    vocabulary = Vocabulary.of(class_names, thresholds.given, thresholds.not_given)
    id_type = joined.id_type
    with_class_scores = config.output.class_scores
    scored = cached(score_blocks(blocks, plan, cuts, vocabulary, id_type, with_class_scores,
                                 files))
    found = statistics(scored)
    scored_rows = int(as_array(found, "rows", (1,))[0])
    if scored_rows != num_rows:  # pragma: no cover - a broken invariant, never bad input
        scored.unpersist()
        raise RuntimeError(f"scored {scored_rows} rows out of {num_rows}")
    label_issues = as_array(found, "label_issues", (num_classes,))
    inverse = as_array(found, "inverse_label_issues", (num_classes,))
    class_issues: DataFrame | TaskWrittenTable
    if files is None:
        class_issues = scored.filter(F.col("kind") == CLASS_ISSUE_ROW).select(
            *CLASS_ISSUE_COLUMNS)
    else:
        class_issues = TaskWrittenTable(
            files.of(id_type, with_class_scores, "class_issues", "scored"))
    classes = class_table(spark, plan, label_issues, inverse, class_names, separation)
    examples = example_rows(scored, as_array(found, "rank_bins", (RANK_BINS,)), vocabulary,
                            id_type, with_class_scores, files)
    return AuditTables(examples, class_issues, classes, plan, class_names,
                       int(as_array(found, "issues", (1,))[0]), label_issues, separation,
                       (scored,))


@dataclass(frozen=True)
class ScoredBlock:
    """One examples block scored and flagged."""

    flagged: pa.RecordBatch  # the flagged examples, compact (labelqa.spark.flagged)
    unflagged: pa.RecordBatch  # examples columns (but issue_rank, explanation) of the others
    class_issues: pa.RecordBatch  # one row per flagged (example, class) pair
    statistics: dict[str, np.ndarray]


def scored_block(batch, plan: AuditPlan, cuts: dict[str, fl.Cut], vocabulary: Vocabulary,
                 ids: pa.Array, with_class_scores: bool) -> ScoredBlock:
    result = audit_batch(batch, plan, cuts)
    flags = result.class_flags
    issue = result.is_label_issue
    # the flagged pairs once, in row order: class_issues and the explanations share them
    rows, classes = np.nonzero(flags)
    given = batch.given[rows, classes]
    probs = batch.probs[rows, classes].astype(np.float64)
    given_labels = bl.list_column(batch.given)
    suggested_labels = bl.list_column(batch.given ^ flags)
    columns = {
        "id": ids,
        "given_labels": given_labels,
        "given_tags": vocabulary.tags(given_labels),
        "label_quality_score": pa.array(result.label_quality_score, type=pa.float64()),
        "is_label_issue": pa.array(issue),
        "suggested_labels": suggested_labels,
        "suggested_tags": vocabulary.tags(suggested_labels),
        "num_class_issues": pa.array(np.bincount(rows, minlength=batch.num_rows)
                                     .astype(np.int32)),
    }
    if with_class_scores:
        columns["class_scores"] = bl.matrix_column(result.class_scores)
    every = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
    chosen = np.flatnonzero(issue)
    position = np.cumsum(issue) - 1
    of_flagged = issue[rows]
    # finished by the task of its score range (labelqa.spark.flagged): fewer bytes to move
    flagged = compact(every.take(pa.array(chosen)), position[rows[of_flagged]],
                      probs[of_flagged])
    class_issues = pa.RecordBatch.from_arrays(
        [ids.take(pa.array(rows)), pa.array(classes.astype(np.int32)),
         pa.array(vocabulary.names, pa.string()).take(pa.array(classes)), pa.array(given),
         pa.array(probs), pa.array(result.class_scores[rows, classes])],
        names=list(CLASS_ISSUE_COLUMNS))
    stats = {
        "rows": np.array([batch.num_rows]),
        "issues": np.array([len(chosen)]),
        "label_issues": np.bincount(classes[given], minlength=batch.num_classes),
        "inverse_label_issues": np.bincount(classes[~given], minlength=batch.num_classes),
        "rank_bins": np.bincount(rank_bins(result.label_quality_score[chosen]),
                                 minlength=RANK_BINS),
    }
    return ScoredBlock(flagged, every.take(pa.array(np.flatnonzero(~issue))), class_issues,
                       stats)


CLASS_ISSUE_COLUMNS = tuple(class_issues_schema(T.LongType()).fieldNames())
#: kinds of the scoring pass's rows besides blocks and statistics
UNFLAGGED_ROW, CLASS_ISSUE_ROW = 3, 4


def scored_schema(id_type: T.DataType, with_class_scores: bool) -> T.StructType:
    """The scoring pass's rows: blocks of flagged examples, statistics, and the final rows of
    the unflagged examples and of class_issues (they cross from Arrow to the JVM once, here,
    and are written from the scored cache without another Python pass)."""
    examples = [f for f in examples_schema(id_type, with_class_scores).fields
                if f.name not in ("issue_rank", "explanation")]
    class_issues = [f for f in class_issues_schema(id_type).fields if f.name != "id"]
    return T.StructType([T.StructField("kind", T.ByteType()),
                         T.StructField("block", T.BinaryType()),
                         T.StructField("name", T.StringType()),
                         T.StructField("position", T.LongType()),
                         T.StructField("value", T.LongType()), *examples, *class_issues])


@dataclass(frozen=True)
class AuditFiles:
    """Where the audit's tasks write `examples` and `class_issues` themselves
    (labelqa.spark.task_files): local staging directories."""

    examples: str
    class_issues: str

    def of(self, id_type: T.DataType, with_class_scores: bool, table: str, written_by: str
           ) -> TaskFiles:
        schema = (examples_schema(id_type, with_class_scores) if table == "examples"
                  else class_issues_schema(id_type))
        return TaskFiles(getattr(self, table), to_arrow_schema(schema), written_by)


def _as_examples(rows: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Unflagged examples rows in the examples table's columns (no rank, no explanation)."""
    return bl.rows_of_kind(schema, rows.num_rows, **dict(zip(rows.schema.names, rows.columns)))


def score_blocks(blocks: DataFrame, plan: AuditPlan, cuts: dict[str, fl.Cut],
                 vocabulary: Vocabulary, id_type: T.DataType, with_class_scores: bool,
                 files: AuditFiles | None = None) -> DataFrame:
    """The scoring pass over every examples block. With `files`, each task writes its
    unflagged examples and its class_issues rows itself (one file each, named by the
    task's partition) and returns only the flagged blocks and the statistics."""
    spark_schema = scored_schema(id_type, with_class_scores)
    schema = to_arrow_schema(spark_schema)
    targets = None if files is None else (
        files.of(id_type, with_class_scores, "examples", "scored"),
        files.of(id_type, with_class_scores, "class_issues", "scored"))

    def kind(code: int, n: int) -> pa.Array:
        return pa.array(np.full(n, code, np.int8))

    def scored_rows(batches: Iterator[pa.RecordBatch], totals: dict[str, np.ndarray]
                    ) -> Iterator[tuple[pa.RecordBatch | None, ScoredBlock]]:
        for block in bl.blocks_of(batches):
            scored = scored_block(bl.batch_of(block), plan, cuts, vocabulary,
                                  block.column(bl.ID), with_class_scores)
            bl.add_totals(totals, scored.statistics)
            flagged = None if not scored.flagged.num_rows else bl.rows_of_kind(
                schema, 1, kind=kind(bl.BLOCK, 1),
                block=pa.array([bl.encode(scored.flagged)], pa.binary()))
            yield flagged, scored

    def through_spark(batches: Iterator[pa.RecordBatch], totals: dict[str, np.ndarray]
                      ) -> Iterator[pa.RecordBatch]:
        for flagged, scored in scored_rows(batches, totals):
            if flagged is not None:
                yield flagged
            for code, rows in ((UNFLAGGED_ROW, scored.unflagged),
                               (CLASS_ISSUE_ROW, scored.class_issues)):
                if rows.num_rows:
                    yield bl.rows_of_kind(schema, rows.num_rows, kind=kind(code, rows.num_rows),
                                          **dict(zip(rows.schema.names, rows.columns)))

    def to_files(batches: Iterator[pa.RecordBatch], totals: dict[str, np.ndarray]
                 ) -> Iterator[pa.RecordBatch]:
        assert targets is not None
        from pyspark import TaskContext

        context = TaskContext.get()
        part = context.partitionId() if context is not None else 0
        examples, class_issues = targets
        with examples.writer(part) as unflagged, class_issues.writer(part) as issues:
            for flagged, scored in scored_rows(batches, totals):
                if flagged is not None:
                    yield flagged
                unflagged.add(_as_examples(scored.unflagged, examples.schema))
                issues.add(scored.class_issues)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        totals: dict[str, np.ndarray] = {}
        yield from (through_spark if targets is None else to_files)(batches, totals)
        names, positions, values = bl.statistic_rows(totals)
        if names:
            yield bl.rows_of_kind(schema, len(names), kind=kind(bl.STATISTIC, len(names)),
                                  name=pa.array(names, pa.string()),
                                  position=pa.array(positions, pa.int64()),
                                  value=pa.array(values, pa.int64()))

    return blocks.mapInArrow(score, spark_schema)



#: the flagged rows a by-range task holds before it sends them on, one block per range
RANGE_BLOCK_BYTES = 32 * 1024 * 1024


def example_rows(scored: DataFrame, rank_counts: np.ndarray, vocabulary: Vocabulary,
                 id_type: T.DataType, with_class_scores: bool, files: AuditFiles | None = None
                 ) -> DataFrame | TaskWrittenTable:
    """The examples table: the unflagged rows from the scored cache as they are, the flagged
    ones ranked by range (labelqa.spark.ranking); one write job. With `files` the unflagged
    rows are already written (by the scoring pass): what is left is the ranking job, whose
    tasks write one file per range."""
    schema = examples_schema(id_type, with_class_scores)
    columns = schema.fieldNames()
    ranges = RankRanges.of(rank_counts, range_rows(len(vocabulary.names)))

    def by_range(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # one block per (task, range), not per (scored block, range): with R ranges a
        # scored block splits into up to R parts, and at 100M x 40 (175 ranges) those tiny
        # IPC blocks made `write examples` 41x the 10M stage (692.7 s against 16.9 s)
        pending: dict[int, list[pa.RecordBatch]] = {}

        def sent() -> Iterator[pa.RecordBatch]:
            for number in sorted(pending):
                yield pa.RecordBatch.from_arrays(
                    [pa.array([number], pa.int32()),
                     pa.array([bl.encode(pa.concat_batches(pending[number]))], pa.binary())],
                    names=["range", "block"])
            pending.clear()

        held = 0
        for flagged in bl.blocks_of(batches):
            of_row = ranges.ranges(flagged.column("label_quality_score").to_numpy())
            for number in np.unique(of_row):
                part = flagged.take(pa.array(np.flatnonzero(of_row == number)))
                pending.setdefault(int(number), []).append(part)
                held += part.nbytes
            if held >= RANGE_BLOCK_BYTES:
                yield from sent()
                held = 0
        yield from sent()

    def ranked_ranges(batches: Iterator[pa.RecordBatch]
                      ) -> Iterator[tuple[int, pa.RecordBatch]]:
        members: dict[int, list[pa.RecordBatch]] = {}
        for record_batch in batches:
            for number, value in zip(record_batch.column("range").to_pylist(),
                                     record_batch.column("block")):
                members.setdefault(number, []).append(bl.decode(value.as_buffer()))
        for number in sorted(members):
            block = pa.concat_batches(members.pop(number))
            rank = ranks_within(block.column("label_quality_score").to_numpy(),
                                bl.ids_of(block.column(bl.ID)), int(ranges.offsets[number]))
            done = {**finished(block, vocabulary), "issue_rank": pa.array(rank, pa.int32())}
            yield number, pa.RecordBatch.from_arrays([done[c] for c in columns], names=columns)

    def ranked(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for _, batch in ranked_ranges(batches):
            yield batch

    blocks = scored.filter(F.col("kind") == bl.BLOCK).select("block")
    by_ranges = (blocks.mapInArrow(by_range, "range int, block binary")
                 .repartition(ranges.count, "range"))
    if files is not None:
        target = files.of(id_type, with_class_scores, "examples", "ranked")

        def ranked_to_files(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            written = [target.write(number, [batch])
                       for number, batch in ranked_ranges(batches)]
            yield pa.RecordBatch.from_arrays([pa.array([sum(written)], pa.int64())],
                                             names=["rows"])

        return TaskWrittenTable(target, by_ranges.mapInArrow(ranked_to_files, "rows long"),
                                int(rank_counts.sum()))
    flagged_rows = by_ranges.mapInArrow(ranked, schema)
    unflagged = scored.filter(F.col("kind") == UNFLAGGED_ROW).select(
        *[F.lit(None).cast(schema[c].dataType).alias(c) if c in ("issue_rank", "explanation")
          else F.col(c) for c in columns])
    return unflagged.unionByName(flagged_rows)


def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(value) else float(value) for value in values]


def class_table(spark: SparkSession, plan: AuditPlan, label_issues: np.ndarray,
                inverse: np.ndarray, class_names: tuple[str, ...], separation: Separation
                ) -> DataFrame:
    """One row per class: counts, thresholds, calibrated joint, noise (K rows, built on the
    driver from K-sized aggregates)."""
    joint = plan.calibrated_joint
    quality = ClassQuality(label_issues, inverse, plan.num_rows)
    table = pd.DataFrame({
        "class_index": np.arange(plan.num_classes, dtype=np.int32),
        "class_name": list(class_names),
        "num_given": plan.num_given.astype(np.int64),
        "threshold_given": plan.thresholds.given,
        "threshold_not_given": plan.thresholds.not_given,
        "cj_given_given": joint[:, 1, 1], "cj_given_not": joint[:, 1, 0],
        "cj_not_given": joint[:, 0, 1], "cj_not_not": joint[:, 0, 0],
        "label_issues": label_issues, "inverse_label_issues": inverse,
        "label_noise": quality.label_noise, "inverse_label_noise": quality.inverse_label_noise,
        "label_quality_score": quality.label_quality_score,
        "note": list(plan.notes),
        # NaN (a class given on every example or on none) is stored as null
        "separation_auc": _nullable(separation.auc),
        "separation_auc_error": _nullable(separation.error),
    })
    return spark.createDataFrame(table, CLASSES)


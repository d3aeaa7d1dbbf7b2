"""From the two input tables to the joined rows to audit, the quarantine and the row counts.

Every input row ends in exactly one state, decided here and counted:

* `collapsed`: an exact copy of another row of the same table (same id, same content);
* `quarantined`: it breaks a rule (`reason`, `detail`), or belongs to an example that does
  (a conflicting duplicate id, a rejected sibling row of a long table, no partner row);
* `audited`: it is part of an example that is audited.

rows in = audited + quarantined + collapsed, per input table; the job checks it before it
reports success. With `validation.on_bad_rows=fail` the first bad row stops the run; with
`quarantine` more than `validation.max_bad_fraction` bad rows in either table stop it after
the quarantine table is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.act.annotators import check_annotator_column
from labelqa.config import AuditConfig, byte_string_as_bytes
from labelqa.core import intake as rules
from labelqa.core.thresholds import NUM_LIMBS
from labelqa.errors import InputError, SchemaErrors
from labelqa.record import SourceCounts
from labelqa.spark import blocks as bl
from labelqa.spark.caching import cached
from labelqa.spark.formats import (
    input_id_type,
    labels_rows,
    prediction_element_type,
    predictions_rows,
    unknown_detail,
    with_hint,
)
from labelqa.spark.intake import (
    RAW,
    as_array,
    intake_blocks,
    located,
    statistics,
    tagged_rows,
)
from labelqa.spark.names import column
from labelqa.spark.session import SessionSettings
from labelqa.spark.vocabulary import resembling, resolve, schema_names

SOURCES = rules.SOURCES


@dataclass(frozen=True)
class JoinedInput:
    """The joined examples (as blocks), what the checks found, the counts, and the exact sums
    the thresholds need (the intake is the first statistics pass)."""

    blocks: DataFrame  # column `block`: examples blocks (labelqa.spark.blocks)
    num_rows: int
    num_classes: int
    single_precision: bool
    id_type: T.DataType
    class_names: tuple[str, ...]
    rejected: DataFrame  # the quarantine table's rows plus `column` (the rule's column)
    labels: SourceCounts
    predictions: SourceCounts
    threshold_totals: dict[str, np.ndarray]
    persisted: tuple[DataFrame, ...] = field(default=())
    settings: SessionSettings | None = None  # the session settings the intake changed

    @property
    def quarantine(self) -> DataFrame:
        """The rows of the quarantine table."""
        return self.rejected.drop("column")

    def release(self) -> None:
        """Free the intake's disk cache (every later table then reads the audit's cache)."""
        for df in self.persisted:
            df.unpersist()

    def close(self) -> None:
        """Free the cache and leave the caller's session settings as they were found."""
        self.release()
        if self.settings is not None:
            self.settings.restore()

    def __enter__(self) -> JoinedInput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: an input named `table:NAME` is the catalog table NAME (db.tags, catalog.db.tags)
CATALOG_PREFIX = "table:"


def catalog_name(source: str) -> str | None:
    """The catalog table an input names (`table:db.tags`), or None for a path."""
    return source[len(CATALOG_PREFIX):].strip() if source.startswith(CATALOG_PREFIX) else None


def read_input(spark: SparkSession, source: str, table: str) -> DataFrame:
    """An input table: `table:NAME` from the session's catalog, else Parquet at a path."""
    name = catalog_name(source)
    try:
        return spark.read.table(name) if name is not None else spark.read.parquet(source)
    except Exception as error:  # noqa: BLE001 - AnalysisException and Py4J errors alike
        reason = str(error).strip().splitlines()[0]
        what = f"the catalog table {name!r}" if name is not None else f"Parquet at {source!r}"
        raise InputError(table, None, f"cannot read {what}: {reason}") from None


def _unreadable(table: str, error: Exception) -> InputError:
    text = str(error)
    line = next((ln.strip() for ln in text.splitlines()
                 if "parquet" in ln.lower() or "corrupt" in ln.lower()), text.splitlines()[0])
    return InputError(table, None, f"unreadable input file (corrupt Parquet?): {line[:300]}")


def count_rows(df: DataFrame, table: str) -> int:
    """Count an input table; a corrupt file is an input error, never skipped."""
    try:
        return df.count()
    except Exception as error:  # noqa: BLE001 - Spark wraps the reader's error
        raise _unreadable(table, error) from None


def count_inputs(labels: DataFrame, predictions: DataFrame, vector: str | None
                 ) -> tuple[int, int, int | None]:
    """Rows of both tables and, with `vector` (the predictions' array column), the length
    most of its arrays have (the most rows; the shortest on a tie): one Spark job, where
    two counts and the length's own scan took three (docs/benchmarks.md, 2026-12-02).
    A corrupt file is an input error of its table, never skipped."""
    length = F.size(column(vector)) if vector is not None else F.lit(-1)
    tables = (labels.select(F.lit(0).alias("table"), F.lit(-1).alias("k"))
              .unionByName(predictions.select(F.lit(1).alias("table"), length.alias("k"))))
    per_length = tables.groupBy("table", "k").count()
    per_table = per_length.groupBy("table").agg(
        F.sum("count").alias("rows"),
        F.max_by("k", F.when(F.col("k") >= 0, F.struct("count", -F.col("k")))).alias("k"))
    try:
        found = {row["table"]: (row["rows"], row["k"]) for row in per_table.collect()}
    except Exception as error:  # noqa: BLE001 - which table: count each alone (error path)
        for df, table in ((labels, "labels"), (predictions, "predictions")):
            count_rows(df, table)
        raise _unreadable("labels", error) from None  # pragma: no cover - neither fails alone
    labels_in, _ = found.get(0, (0, None))
    predictions_in, k = found.get(1, (0, None))
    return int(labels_in), int(predictions_in), None if k is None else int(k)


def quarantine_rows(intake: DataFrame, sources: tuple[str, str] = SOURCES) -> DataFrame:
    """The intake's quarantined rows as the quarantine table's, plus `column`; `sources`:
    the names of the two tables (labels, and predictions or features)."""
    source = F.when(F.col("source") == rules.LABELS, sources[0]).otherwise(sources[1])
    raw = F.when(F.col("source") == rules.LABELS, F.to_json(RAW[0])).otherwise(
        F.to_json(RAW[1]))
    return (intake.filter(F.col("kind") == bl.QUARANTINED_ROW)
            .select(source.alias("source"), "id", "reason", "detail", raw.alias("row_json"),
                    "column"))


def source_counts(found: dict[str, dict[int, int]], rows_in: tuple[int, int]
            ) -> tuple[SourceCounts, SourceCounts, int]:
    """Rows per table, state and reason, and the number of examples, from the intake's
    statistics."""
    counts = []
    for source, rows in enumerate(rows_in):
        by_status = {status: 0 for status in rules.STATUSES}
        reasons: dict[str, int] = {}
        for name, values in found.items():
            parts = name.split("|", 3)
            if parts[0] != "rows" or parts[1] != str(source):
                continue
            status = rules.STATUSES[int(parts[2])]
            by_status[status] += values[0]
            if status == "quarantined":
                reasons[parts[3]] = reasons.get(parts[3], 0) + values[0]
        counts.append(SourceCounts(rows, by_status["ok"], by_status["quarantined"],
                                   by_status["collapsed"], dict(sorted(reasons.items())),
                                   found.get("rows|repeated|0|", {}).get(0, 0)
                                   if source == rules.LABELS else 0))
    return counts[0], counts[1], found.get("rows|examples|0|", {}).get(0, 0)


#: the `spark.sql.shuffle.partitions` floor gives a partition of the intake (and a task of
#: every pass over its blocks) at least this many examples, and two partitions at least:
#: each Python task costs a fixed ~0.1-0.3 s (measured on a 4,000 x 10 audit: 16
#: partitions 58.0 s, 2 partitions 53.2 s, whole process)
MIN_ROWS_PER_PARTITION = 50_000


def _partitions(spark: SparkSession, labels_in: int, predictions_in: int, k: int,
                single: bool) -> int:
    """Enough partitions for about `spark.sql.adaptive.advisoryPartitionSizeInBytes` each
    (rows in memory: id, the vector, the tags), never fewer than
    `spark.sql.shuffle.partitions`, except where that would leave a partition fewer than
    MIN_ROWS_PER_PARTITION rows (then two, or fewer if the floor is); each becomes a block
    of the intake's cache."""
    configured = int(spark.conf.get("spark.sql.shuffle.partitions", "200"))
    target = byte_string_as_bytes(
        spark.conf.get("spark.sql.adaptive.advisoryPartitionSizeInBytes", "64m"))
    size = predictions_in * (k * (4 if single else 8) + 48) + labels_in * 64
    rows = max(labels_in, predictions_in)
    floor = min(configured, max(2, rows // MIN_ROWS_PER_PARTITION))
    return max(floor, -(-size // target))


#: cells (rows x K) of an Arrow batch, and so of an examples block: the NumPy passes run
#: fastest when a block's (n, K) matrices stay near the CPU cache (measured per million rows
#: x 40 classes, joint + histograms: 4.8 s in blocks of 20,000 rows, 2.7 s in 6,553 rows;
#: x 1000 classes: 19.3 s in 2,000 rows, 12.3 s in 500)
BLOCK_CELLS = 1 << 18


def records_per_batch(num_classes: int) -> int:
    """Rows per Arrow batch of the intake's pass, and so per examples block: BLOCK_CELLS
    cells, 500 to 20,000 rows (below 500 the per-batch costs dominate)."""
    return int(min(20_000, max(500, BLOCK_CELLS // num_classes)))


ARROW_RECORDS = "spark.sql.execution.arrow.maxRecordsPerBatch"

#: Arrow rows per batch of the passes over the cached intake, set once it is cached (its own
#: batches are planned by then): a row there is a whole examples block (~1 MB at K = 40), and
#: with the intake's records_per_batch a task's blocks came as one Arrow batch, copied whole
#: by the JVM before Python could start on it. A pass over 10M x 40 that only counts its
#: blocks: 6.9-8.0 s in one batch per task, 4.0-5.0 s in 1 to 8 blocks per batch
BLOCKS_PER_BATCH = 4

#: `spark.sql.execution.arrow.maxBytesPerBatch` at Int.MaxValue: Spark then skips measuring
#: the Arrow batch's bytes after every row it adds (5.7 % of the JVM's samples in a Java
#: Flight Recorder profile of a 1M x 40 audit, walking the raw structs' child vectors); the
#: batches stay bounded by records_per_batch
NO_BYTE_LIMIT = 2**31 - 1


def reader_batch_rows(num_classes: int) -> int:
    """Rows per batch of Spark's Parquet reader: bounded heap for wide K (the reader's
    default 4096 rows of 4000 float32 probabilities asked for one 64 MB buffer and ran out of
    a 2 GB heap: 250k x 4000, README: Benchmarks)."""
    return int(min(4096, max(500, 2_000_000 // num_classes)))


def check_schemas(labels: DataFrame, predictions: DataFrame, config: AuditConfig) -> None:
    """Every schema problem of both tables, from the schemas alone (before any Spark job),
    each with the fix it suggests; one table's first problem each, raised together."""
    inp = config.input
    names = schema_names(config, labels, predictions) or ()
    problems: list[InputError] = []
    checks = (lambda: (labels_rows(labels, inp, names), check_annotator_column(labels, inp)),
              lambda: predictions_rows(predictions, inp, names))
    for check in checks:
        try:
            check()
        except InputError as error:
            problems.append(with_hint(error, labels, predictions, config))
    if not problems:  # the ids agree only when both are valid ids
        try:
            input_id_type(labels, predictions, inp)
        except InputError as error:
            problems.append(error)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise SchemaErrors(problems)


def join_inputs(labels: DataFrame, predictions: DataFrame, config: AuditConfig,
                schemas_checked: bool = False) -> JoinedInput:
    """Check both tables (their schemas first, unless the caller just did) and bring them
    through the intake: the joined examples as blocks, the quarantine, the counts."""
    inp = config.input
    if not schemas_checked:
        check_schemas(labels, predictions, config)
    vector = inp.predictions_column if inp.predictions_format == "array" else None
    labels_in, predictions_in, vector_length = count_inputs(labels, predictions, vector)
    for table, rows in (("labels", labels_in), ("predictions", predictions_in)):
        if rows == 0:
            raise InputError(table, None, "the table is empty: no rows to audit")
    try:
        names = resolve(config, labels, predictions, vector_length)
        checked_labels = labels_rows(labels, inp, names)
        checked_predictions = predictions_rows(predictions, inp, names)
    except InputError as error:  # a column missing or of the wrong type: suggest the fix
        raise with_hint(error, labels, predictions, config) from None
    k = len(names)
    run_id_type = input_id_type(labels, predictions, inp)
    single = isinstance(prediction_element_type(predictions, inp, names), T.FloatType)
    empty_when_unlabeled = inp.labels_format == "long" and inp.unlabeled_ids == "empty"
    tagged = tagged_rows(checked_labels).unionByName(tagged_rows(checked_predictions),
                                                     allowMissingColumns=True)
    spark = labels.sparkSession
    # for the audit only: rows per Arrow batch and per Parquet reader batch from K, no Arrow
    # byte limit (JoinedInput.close restores the caller's settings)
    settings = SessionSettings.apply(spark, {
        key: str(value) for key, value in (
            (ARROW_RECORDS, records_per_batch(k)),
            ("spark.sql.parquet.columnarReaderBatchSize", reader_batch_rows(k)),
            ("spark.sql.execution.arrow.maxBytesPerBatch", NO_BYTE_LIMIT))
        if key not in config.spark.conf})
    decision = rules.IntakeRules(
        labels_one_row_per_id=checked_labels.one_row_per_id,
        predictions_one_row_per_id=checked_predictions.one_row_per_id,
        expected_prediction_rows=k if inp.predictions_format == "long" else None,
        empty_when_unlabeled=empty_when_unlabeled)
    intake = None
    try:
        intake = cached(intake_blocks(
            tagged, decision, k, located(checked_predictions, checked_predictions.probs_column),
            located(checked_labels, checked_labels.labels_column),
            _partitions(spark, labels_in, predictions_in, k, single)))
        found = statistics(intake)
        label_counts, prediction_counts, num_rows = source_counts(
            found, (labels_in, predictions_in))
        check_accounting(label_counts, prediction_counts, num_rows, inp.labels_format,
                         inp.predictions_format)
        if ARROW_RECORDS not in config.spark.conf:
            settings = settings.also({ARROW_RECORDS: str(BLOCKS_PER_BATCH)})
    except BaseException:
        if intake is not None:
            intake.unpersist()
        settings.restore()
        raise
    rejected = quarantine_rows(intake)
    for source, table, counts, name_column, what in (
            ("labels", labels, label_counts, inp.tag_column, "tag"),
            ("predictions", predictions, prediction_counts, inp.class_column, "class")):
        if counts.reasons.get("unknown_class") and name_column in table.columns \
                and isinstance(table.schema[name_column].dataType, T.StringType):
            rejected = _with_resemblance(rejected, source, table, name_column, what, names)
    threshold_totals = {
        "num_given": as_array(found, "num_given", (k,)),
        "given_limbs": as_array(found, "given_limbs", (NUM_LIMBS, k)),
        "not_given_limbs": as_array(found, "not_given_limbs", (NUM_LIMBS, k))}
    examples = intake.filter(F.col("kind") == bl.BLOCK).select("block")
    return JoinedInput(examples, num_rows, k, single, run_id_type, names,
                       rejected, label_counts, prediction_counts,
                       threshold_totals, (intake,), settings)


#: at most this many distinct unknown names are matched against the classes
MAX_UNKNOWN_NAMES = 10_000


def _with_resemblance(rejected: DataFrame, source: str, table: DataFrame, name_column: str,
                      what: str, names: tuple[str, ...]) -> DataFrame:
    """`rejected` whose unknown_class details name the class an unknown name resembles
    (`enrgy`, `Energy` -> `energy`). One small job: the distinct unknown names of the input;
    the details are rewritten by a map, in the JVM."""
    values = column(name_column)
    unknown = [row[0] for row in table.select(values).where(
        values.isNotNull() & ~values.isin(list(names))).distinct()
        .limit(MAX_UNKNOWN_NAMES).collect()]
    hints = {value: f"; it resembles the class '{match}'"
             for value in unknown if (match := resembling(value, names)) is not None}
    if not hints:
        return rejected
    lookup = F.create_map(*[F.lit(x) for pair in hints.items() for x in pair])
    # the name from the detail's end: a sibling row's detail quotes the rejected row's
    before, after = unknown_detail(what, "\0").split("\0")
    named = F.regexp_extract(F.col("detail"), f"{re.escape(before)}(.*){re.escape(after)}$", 1)
    detail = F.when((F.col("source") == source) & (F.col("reason") == "unknown_class"),
                    F.concat(F.col("detail"), F.coalesce(F.element_at(lookup, named),
                                                         F.lit("")))
                    ).otherwise(F.col("detail"))
    return rejected.withColumn("detail", detail)


#: Reasons that only say a row's partner row in the other table was rejected or absent.
CONSEQUENCES = ("missing_prediction", "missing_features", "missing_labels")


def _own_faults(counts: SourceCounts) -> int:
    return sum(n for reason, n in counts.reasons.items() if reason not in CONSEQUENCES)


class CheckedInputs(Protocol):
    """What `stop_error` reads of an intake's result (the audit's JoinedInput, predict's)."""

    labels: SourceCounts
    predictions: SourceCounts  # the other table: predictions, or predict's features
    rejected: DataFrame
    num_rows: int


def _by_blame(joined: CheckedInputs, sources: tuple[str, str] = SOURCES
              ) -> list[tuple[str, SourceCounts]]:
    """The tables, the one whose rows broke the most rules themselves first (labels first on
    a tie): its rows are the cause, the other table's `missing_*` rows the consequence."""
    tables = [(sources[0], joined.labels), (sources[1], joined.predictions)]
    return sorted(tables, key=lambda pair: -_own_faults(pair[1]))


def _dominant_reason(counts: SourceCounts) -> str:
    """The most frequent reason of a table's quarantined rows, its own faults first."""
    return min(counts.reasons, key=lambda r: (r in CONSEQUENCES, -counts.reasons[r], r))


def _example(joined: CheckedInputs, source: str, reason: str):
    """The quarantined row of `source` with `reason` that has the least id (one small job on
    the intake's cache)."""
    return (joined.rejected.filter((F.col("source") == source) & (F.col("reason") == reason))
            .orderBy(F.col("id").asc_nulls_first()).first())


def stop_error(config: AuditConfig, joined: CheckedInputs, sources: tuple[str, str] = SOURCES
               ) -> InputError | None:
    """Why the bad rows stop this run, if they do (raised once the quarantine table is
    written): the first bad row under `validation.on_bad_rows=fail`, no row left to audit,
    or more than `validation.max_bad_fraction` bad rows in a table."""
    if not (joined.labels.quarantined or joined.predictions.quarantined):
        return None
    if config.validation.on_bad_rows == "fail":
        # a row's own fault first; "its partner was rejected" only explains the consequence
        consequence = F.col("reason").isin(*CONSEQUENCES)
        first = joined.rejected.orderBy(consequence, F.col("id").asc_nulls_first(), "source",
                                        "reason").first()
        return InputError(first["source"], first["column"], f"{first['reason']}: "
                          f"{first['detail']} (validation.on_bad_rows=fail)", first["id"])
    if joined.num_rows == 0:
        source, counts = _by_blame(joined, sources)[0]
        reason = _dominant_reason(counts)
        example = _example(joined, source, reason)
        return InputError(source, example["column"], "no rows left to audit after the "
                          f"checks: {counts.reasons[reason]} of {counts.rows} rows are "
                          f"{reason}, e.g. {example['detail']} (quarantined: labels "
                          f"{joined.labels.quarantined}, predictions "
                          f"{joined.predictions.quarantined}; see the quarantine table)",
                          example["id"])
    limit = config.validation.max_bad_fraction
    for source, counts in _by_blame(joined, sources):
        if counts.rows and counts.quarantined / counts.rows > limit:
            reasons = ", ".join(f"{r}={n}" for r, n in counts.reasons.items())
            reason = _dominant_reason(counts)
            example = _example(joined, source, reason)
            return InputError(source, None, f"{counts.quarantined} of {counts.rows} rows "
                              f"({counts.quarantined / counts.rows:.1%}) are bad, more than "
                              f"validation.max_bad_fraction={limit} ({reasons}); most often "
                              f"{reason}: {example['detail']}; see the quarantine table",
                              example["id"])
    return None


def check_accounting(labels: SourceCounts, predictions: SourceCounts, audited_examples: int,
                      labels_format: str, predictions_format: str) -> None:
    """rows in = audited + quarantined + collapsed, and one audited row per example."""
    for source, counts in (("labels", labels), ("predictions", predictions)):
        total = counts.audited + counts.quarantined + counts.collapsed
        if total != counts.rows:  # pragma: no cover - a broken invariant, not bad input
            raise RuntimeError(f"{source}: {counts.rows} rows in, but {counts.audited} audited "
                               f"+ {counts.quarantined} quarantined + {counts.collapsed} "
                               "collapsed")
    if predictions_format != "long" and predictions.audited != audited_examples:
        raise RuntimeError(f"predictions: {predictions.audited} rows audited for "
                           f"{audited_examples} examples")  # pragma: no cover
    if labels_format != "long" and labels.audited != audited_examples:
        raise RuntimeError(f"labels: {labels.audited} rows audited for "
                           f"{audited_examples} examples")  # pragma: no cover

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

from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.config import AuditConfig
from labelqa.errors import InputError
from labelqa.spark.arrow import ID, LABELS, PROBS
from labelqa.spark.formats import (
    RAW_PREFIX,
    CheckedRows,
    labels_rows,
    prediction_element_type,
    predictions_rows,
)
from labelqa.spark.names import column
from labelqa.spark.vocabulary import resolve

QUARANTINE_SCHEMA = "source string, id string, reason string, detail string, row_json string"


@dataclass(frozen=True)
class SourceCounts:
    rows: int
    audited: int
    quarantined: int
    collapsed: int
    reasons: dict[str, int]
    repeated_tags: int = 0


@dataclass(frozen=True)
class JoinedInput:
    """The joined rows (columns id, labels, pred_probs), what the checks found, the counts."""

    rows: DataFrame
    num_rows: int
    num_classes: int
    single_precision: bool
    id_type: T.DataType
    class_names: tuple[str, ...]
    quarantine: DataFrame
    labels: SourceCounts
    predictions: SourceCounts
    persisted: tuple[DataFrame, ...] = field(default=())

    def release(self) -> None:
        for df in self.persisted:
            df.unpersist()


def read_parquet(spark: SparkSession, path: str, table: str) -> DataFrame:
    try:
        return spark.read.parquet(path)
    except Exception as error:  # noqa: BLE001 - AnalysisException and Py4J errors alike
        reason = str(error).strip().splitlines()[0]
        raise InputError(table, None, f"cannot read Parquet at {path!r}: {reason}") from None


def count_rows(df: DataFrame, table: str) -> int:
    """Count an input table; a corrupt file is an input error, never skipped."""
    try:
        return df.count()
    except Exception as error:  # noqa: BLE001 - Spark wraps the reader's error
        text = str(error)
        line = next((ln.strip() for ln in text.splitlines()
                     if "parquet" in ln.lower() or "corrupt" in ln.lower()), text.splitlines()[0])
        raise InputError(table, None, f"unreadable input file (corrupt Parquet?): {line[:300]}"
                         ) from None


def table_status(checked: CheckedRows, expected_units: int | None) -> DataFrame:
    """Each checked row with its state within its own table (`ok` still needs a partner)."""
    rows = checked.rows
    raw = [column(RAW_PREFIX + c) for c in checked.raw_columns]
    rows = rows.withColumn("_fingerprint", F.xxhash64(*raw))
    # one exchange by id for every window: a copy is a row whose predecessor in
    # (fingerprint) order has the same fingerprint
    copies = Window.partitionBy(ID).orderBy("_fingerprint")
    repeat = F.lag("_fingerprint").over(copies) == F.col("_fingerprint")
    rows = rows.withColumn("_copy", F.when(F.col(ID).isNull() | ~F.coalesce(repeat, F.lit(False)),
                                           F.lit(1)).otherwise(F.lit(2)))
    kept = (F.col("_copy") == 1) & F.col(ID).isNotNull()
    per_id = Window.partitionBy(ID)
    per_unit = per_id if checked.one_row_per_id else Window.partitionBy(ID, "_unit")
    rows = rows.withColumn("_same_unit", F.sum(kept.cast("int")).over(per_unit))
    rows = rows.withColumn("_conflict", F.max(F.col("_same_unit")).over(per_id) > 1)
    rows = rows.withColumn("_sibling", F.min(F.when(kept & F.col("_reason").isNotNull(),
                                                    F.struct("_reason", "_detail", "_column"))
                                             ).over(per_id))
    rows = rows.withColumn("_units", F.sum(kept.cast("int")).over(per_id))
    conflict_detail = ("the id has differing rows" if checked.one_row_per_id else
                       "a class of this id has rows with differing values")
    incomplete = (F.col("_units") != expected_units) if expected_units else F.lit(False)
    def outcome(status: str, reason, detail, column) -> F.Column:
        def text(value):
            return F.lit(value).cast("string") if value is None or isinstance(value, str) \
                else value
        return F.struct(F.lit(status).alias("s"), text(reason).alias("r"),
                        text(detail).alias("d"), text(column).alias("c"))

    sibling = F.col("_sibling")
    state = (
        F.when(~((F.col("_copy") == 1) | F.col(ID).isNull()),
               outcome("collapsed", None, None, None))
        .when(F.col("_reason").isNotNull(),
              outcome("quarantined", F.col("_reason"), F.col("_detail"), F.col("_column")))
        .when(F.col("_conflict"), outcome("quarantined", "duplicate_id", conflict_detail, ID))
        .when(sibling.isNotNull(),
              outcome("quarantined", sibling["_reason"],
                      F.concat(F.lit("another row of this id was rejected: "),
                               sibling["_detail"]), sibling["_column"]))
        .when(incomplete,
              outcome("quarantined", "wrong_length",
                      F.concat(F.lit("has "), F.col("_units").cast("string"),
                               F.lit(f" of K={expected_units} class rows")), ID))
        .otherwise(outcome("ok", None, None, None)))
    rows = rows.withColumn("_state", state)
    return rows.select(
        *[column(c) for c in rows.columns if c.startswith(RAW_PREFIX)
          or c in (ID, "_unit", "_classes", "_probs", "_prob", "_repeated")],
        F.col("_state.s").alias("_status"), F.col("_state.r").alias("_reason"),
        F.col("_state.d").alias("_detail"), F.col("_state.c").alias("_column"))


def _with_partner(status: DataFrame, partner_ids: DataFrame, reason: str, detail: str,
                  unpaired_ok: DataFrame | None = None) -> DataFrame:
    """Rows still `ok` whose id has no `ok` row in the other table lose their partner.

    `unpaired_ok`: ids that have no row at all in the other table and are audited anyway
    (long labels with `input.unlabeled_ids=empty`: an example with no tags).
    """
    joined = status.join(partner_ids.withColumn("_paired", F.lit(True)), ID, "left")
    if unpaired_ok is not None:
        joined = joined.join(unpaired_ok.withColumn("_seen", F.lit(True)), ID, "left")
        lonely = F.col("_paired").isNull() & F.col("_seen").isNotNull()
    else:
        lonely = F.col("_paired").isNull()
    lonely = (F.col("_status") == "ok") & lonely
    return joined.select(
        *[column(c) for c in status.columns
          if c not in ("_status", "_reason", "_detail", "_column")],
        F.when(lonely, "quarantined").otherwise(F.col("_status")).alias("_status"),
        F.when(lonely, reason).otherwise(F.col("_reason")).alias("_reason"),
        F.when(lonely, detail).otherwise(F.col("_detail")).alias("_detail"),
        F.when(lonely, ID).otherwise(F.col("_column")).alias("_column"))


def _quarantine_rows(status: DataFrame, source: str, raw_columns: tuple[str, ...]) -> DataFrame:
    raw = F.struct(*[column(RAW_PREFIX + c).alias(c) for c in raw_columns])
    return (status.filter(F.col("_status") == "quarantined")
            .select(F.lit(source).alias("source"), F.col(ID).cast("string").alias("id"),
                    F.col("_reason").alias("reason"), F.col("_detail").alias("detail"),
                    F.to_json(raw).alias("row_json"), F.col("_column").alias("column")))


def _counts(label_status: DataFrame, prediction_status: DataFrame, labels_in: int,
            predictions_in: int) -> tuple[SourceCounts, SourceCounts]:
    """Rows per state and reason of both tables, in one job."""
    def per_state(status: DataFrame, source: str, repeats: bool) -> DataFrame:
        return status.select(F.lit(source).alias("source"), "_status", "_reason",
                             (F.col("_repeated") if repeats else F.lit(0)).alias("_repeated"))

    found = (per_state(label_status, "labels", True)
             .unionByName(per_state(prediction_status, "predictions", False))
             .groupBy("source", "_status", "_reason")
             .agg(F.count(F.lit(1)).alias("n"), F.sum("_repeated").alias("repeated"))
             .collect())
    counts = []
    for source, rows in (("labels", labels_in), ("predictions", predictions_in)):
        by_status = {"ok": 0, "quarantined": 0, "collapsed": 0}
        reasons: dict[str, int] = {}
        repeated = 0
        for row in (r for r in found if r["source"] == source):
            by_status[row["_status"]] += row["n"]
            if row["_status"] == "quarantined":
                reasons[row["_reason"]] = reasons.get(row["_reason"], 0) + row["n"]
            if row["_status"] == "ok":
                repeated += int(row["repeated"] or 0)
        counts.append(SourceCounts(rows, by_status["ok"], by_status["quarantined"],
                                   by_status["collapsed"], dict(sorted(reasons.items())),
                                   repeated))
    return counts[0], counts[1]


def join_inputs(labels: DataFrame, predictions: DataFrame, config: AuditConfig) -> JoinedInput:
    inp = config.input
    labels_in = count_rows(labels, "labels")
    predictions_in = count_rows(predictions, "predictions")
    for table, rows in (("labels", labels_in), ("predictions", predictions_in)):
        if rows == 0:
            raise InputError(table, None, "the table is empty: no rows to audit")
    names = resolve(config, labels, predictions)
    k = len(names)
    checked_labels = labels_rows(labels, inp, names)
    checked_predictions = predictions_rows(predictions, inp, names)
    single = isinstance(prediction_element_type(predictions, inp, names), T.FloatType)

    # cached: each table's checks, fingerprints and windows run once, although both the
    # table's own states and the other table's partner ids read them
    own_labels = table_status(checked_labels, None).persist(StorageLevel.MEMORY_AND_DISK)
    own_predictions = table_status(checked_predictions,
                                   k if inp.predictions_format == "long" else None
                                   ).persist(StorageLevel.MEMORY_AND_DISK)
    ok_ids = {name: df.filter(F.col("_status") == "ok").select(ID).distinct()
              for name, df in (("labels", own_labels), ("predictions", own_predictions))}
    empty_when_unlabeled = inp.labels_format == "long" and inp.unlabeled_ids == "empty"
    label_status = _with_partner(own_labels, ok_ids["predictions"], "missing_prediction",
                                 "no prediction row for this id")
    # with long labels, an id without any tag row may be an example with no tags; an id whose
    # tag rows were rejected is not
    any_label_ids = (own_labels.filter(F.col(ID).isNotNull()).select(ID).distinct()
                     if empty_when_unlabeled else None)
    prediction_status = _with_partner(own_predictions, ok_ids["labels"], "missing_labels",
                                      "no accepted labels row for this id", any_label_ids)
    persisted = [own_labels, own_predictions]
    try:
        label_counts, prediction_counts = _counts(label_status, prediction_status, labels_in,
                                                  predictions_in)
        quarantine = _quarantine_rows(label_status, "labels", checked_labels.raw_columns) \
            .unionByName(_quarantine_rows(prediction_status, "predictions",
                                          checked_predictions.raw_columns))
        _apply_policy(config, quarantine, label_counts, prediction_counts)

        good_labels = label_status.filter(F.col("_status") == "ok")
        if checked_labels.one_row_per_id:
            label_sets = good_labels.select(ID, F.col("_classes").alias(LABELS))
        else:
            label_sets = good_labels.groupBy(ID).agg(
                F.array_sort(F.collect_set("_unit")).alias(LABELS))
        good_predictions = prediction_status.filter(F.col("_status") == "ok")
        if checked_predictions.one_row_per_id:
            vectors = good_predictions.select(
                ID, column(checked_predictions.probs_column).alias(PROBS))
        else:
            vectors = good_predictions.groupBy(ID).agg(F.transform(
                F.array_sort(F.collect_list(F.struct("_unit", "_prob"))),
                lambda s: s["_prob"]).alias(PROBS))
        how = "left" if empty_when_unlabeled else "inner"
        joined = (vectors.join(label_sets, ID, how)
                  .select(ID, F.coalesce(F.col(LABELS), F.array().cast("array<int>"))
                          .alias(LABELS), PROBS)
                  .persist(StorageLevel.MEMORY_AND_DISK))
        persisted.append(joined)
        num_rows = joined.count()
        _check_accounting(label_counts, prediction_counts, num_rows, inp.labels_format,
                          inp.predictions_format, inp.unlabeled_ids)
        if num_rows == 0:
            raise InputError("labels", None, "no rows left to audit after the checks "
                             f"(quarantined: labels {label_counts.quarantined}, predictions "
                             f"{prediction_counts.quarantined})")
    except Exception:
        for df in persisted:
            df.unpersist()
        raise
    return JoinedInput(joined, num_rows, k, single, joined.schema[ID].dataType, names,
                       quarantine.drop("column"), label_counts, prediction_counts,
                       tuple(persisted))


def _apply_policy(config: AuditConfig, quarantine: DataFrame, labels: SourceCounts,
                  predictions: SourceCounts) -> None:
    if config.validation.on_bad_rows == "fail" and (labels.quarantined or
                                                     predictions.quarantined):
        # a row's own fault first; "its partner was rejected" only explains the consequence
        consequence = F.col("reason").isin("missing_prediction", "missing_labels")
        first = quarantine.orderBy(consequence, F.col("id").asc_nulls_first(), "source",
                                   "reason").first()
        raise InputError(first["source"], first["column"], f"{first['reason']}: "
                         f"{first['detail']} (validation.on_bad_rows=fail)", first["id"])


def bad_fraction_error(config: AuditConfig, joined: JoinedInput) -> InputError | None:
    """The error to raise once the quarantine table is written, if too many rows are bad."""
    limit = config.validation.max_bad_fraction
    for source, counts in (("labels", joined.labels), ("predictions", joined.predictions)):
        if counts.rows and counts.quarantined / counts.rows > limit:
            reasons = ", ".join(f"{r}={n}" for r, n in counts.reasons.items())
            return InputError(source, None, f"{counts.quarantined} of {counts.rows} rows "
                              f"({counts.quarantined / counts.rows:.1%}) are bad, more than "
                              f"validation.max_bad_fraction={limit} ({reasons}); see the "
                              "quarantine table")
    return None


def _check_accounting(labels: SourceCounts, predictions: SourceCounts, audited_examples: int,
                      labels_format: str, predictions_format: str, unlabeled: str) -> None:
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

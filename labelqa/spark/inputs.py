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

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.config import AuditConfig
from labelqa.errors import InputError
from labelqa.spark.arrow import ID, LABELS, PROBS
from labelqa.spark.caching import cached
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


SOURCES = ("labels", "predictions")
LABELS_SOURCE, PREDICTIONS_SOURCE = 0, 1
EXCHANGE_ORDER = (ID, "_source", "_unit", "_fingerprint")


def _tagged(checked: CheckedRows, source: int) -> DataFrame:
    """One table's checked rows in the shape both tables share for the single exchange.

    The raw row travels as one struct (`_raw_labels` / `_raw_predictions`), turned into
    `row_json` only for rows that end quarantined; array predictions' vector is read from it.
    """
    rows = checked.rows
    raw = [column(RAW_PREFIX + c) for c in checked.raw_columns]
    payload = [c for c in ("_classes", "_repeated", "_probs", "_prob") if c in rows.columns]
    return rows.select(
        F.lit(source).alias("_source"), ID, "_unit", *payload,
        F.xxhash64(*raw).alias("_fingerprint"), "_reason", "_detail", "_column",
        F.struct(*[column(RAW_PREFIX + c).alias(c) for c in checked.raw_columns])
        .alias(f"_raw_{SOURCES[source]}"))


def _probs_column(checked: CheckedRows) -> F.Column:
    if checked.probs_column.startswith(RAW_PREFIX):
        return F.col("_raw_predictions")[checked.probs_column[len(RAW_PREFIX):]]
    return F.col(checked.probs_column)


def _outcome(status: str, reason, detail, column_name) -> F.Column:
    def text(value):
        return F.lit(value).cast("string") if value is None or isinstance(value, str) else value
    return F.struct(F.lit(status).alias("s"), text(reason).alias("r"), text(detail).alias("d"),
                    text(column_name).alias("c"))


def intake_status(tagged: DataFrame, labels: CheckedRows, predictions: CheckedRows,
                  expected_units: int | None, empty_when_unlabeled: bool,
                  num_partitions: int) -> DataFrame:
    """Every row of both tables with its final state, and each audited example's joined
    vectors on its `_lead` row (its prediction row, or the one of class 0).

    Both tables travel together, so an id's rows of both tables meet in one partition, sorted
    by (id, table, class, fingerprint), and every rule is decided by two windows over that
    order: one finds exact copies, one aggregates each table's rows of the id. Measured at
    1M x 40: one exchange and two window passes instead of four exchanges, two joins and
    nine window passes.
    """
    rows = tagged.repartition(num_partitions, ID).sortWithinPartitions(*EXCHANGE_ORDER)
    per_id = Window.partitionBy(ID)
    is_labels = F.col("_source") == LABELS_SOURCE
    # a copy is a row whose predecessor in (class, fingerprint) order has its fingerprint
    in_order = Window.partitionBy(ID, "_source").orderBy("_unit", "_fingerprint")
    repeat = F.lag("_fingerprint").over(in_order) == F.col("_fingerprint")
    rows = rows.withColumn("_kept", F.col(ID).isNotNull() & ~F.coalesce(repeat, F.lit(False)))
    kept, clean = F.col("_kept"), F.col("_kept") & F.col("_reason").isNull()
    # one window pass (one select) for everything aggregated over the id's rows: per table,
    # rows kept, distinct classes among them, the first rejected one; the example's tags and
    # vector from its clean rows (used only if all of them are ok)
    aggregates = []
    for name, mine in (("labels", is_labels), ("predictions", ~is_labels)):
        aggregates += [
            F.sum(F.when(mine & kept, 1)).over(per_id).alias(f"_kept_{name}"),
            F.size(F.collect_set(F.when(mine & kept, F.coalesce(F.col("_unit"), F.lit(-1))))
                   .over(per_id)).alias(f"_units_{name}"),
            F.min(F.when(mine & kept & F.col("_reason").isNotNull(),
                         F.struct("_reason", "_detail", "_column"))).over(per_id)
            .alias(f"_rejected_{name}")]
    if labels.one_row_per_id:
        label_set = F.first(F.when(is_labels & clean, F.col("_classes")), ignorenulls=True
                            ).over(per_id)
    else:
        label_set = F.array_sort(F.collect_set(F.when(is_labels & clean, F.col("_unit")))
                                 .over(per_id))
    aggregates.append(label_set.alias("_label_set"))
    if not predictions.one_row_per_id:
        aggregates.append(F.transform(F.array_sort(F.collect_list(F.when(
            ~is_labels & clean, F.struct("_unit", "_prob"))).over(per_id)),
            lambda s: s["_prob"]).alias("_vector"))
    if empty_when_unlabeled:
        aggregates.append(F.max(is_labels).over(per_id).alias("_any_labels"))
    rows = rows.select("*", *aggregates)
    if predictions.one_row_per_id:
        rows = rows.withColumn("_vector", _probs_column(predictions))

    def table(name: str) -> dict[str, F.Column]:
        kept_rows = F.coalesce(F.col(f"_kept_{name}"), F.lit(0))
        incomplete = (kept_rows != expected_units) if expected_units and name == "predictions" \
            else F.lit(False)
        conflict = kept_rows > F.col(f"_units_{name}")
        rejected = F.col(f"_rejected_{name}")
        return {"conflict": conflict, "rejected": rejected, "incomplete": incomplete,
                "units": kept_rows,
                "ok": (kept_rows > 0) & ~conflict & rejected.isNull() & ~incomplete}

    tables = {name: table(name) for name in SOURCES}
    mine_of = {key: F.when(is_labels, value).otherwise(tables["predictions"][key])
               for key, value in tables["labels"].items()}

    def conflict_detail(checked: CheckedRows) -> str:
        return ("the id has differing rows" if checked.one_row_per_id else
                "a class of this id has rows with differing values")

    rejected = mine_of["rejected"]
    own = (
        F.when(F.col(ID).isNotNull() & ~kept, _outcome("collapsed", None, None, None))
        .when(F.col("_reason").isNotNull(),
              _outcome("quarantined", F.col("_reason"), F.col("_detail"), F.col("_column")))
        .when(mine_of["conflict"], _outcome(
            "quarantined", "duplicate_id",
            F.when(is_labels, conflict_detail(labels)).otherwise(conflict_detail(predictions)),
            ID))
        .when(rejected.isNotNull(),
              _outcome("quarantined", rejected["_reason"],
                       F.concat(F.lit("another row of this id was rejected: "),
                                rejected["_detail"]), rejected["_column"]))
        .when(mine_of["incomplete"],
              _outcome("quarantined", "wrong_length",
                       F.concat(F.lit("has "), mine_of["units"].cast("string"),
                                F.lit(f" of K={expected_units} class rows")), ID))
        .otherwise(_outcome("ok", None, None, None)))
    # with long labels, an id without any tag row may be an example with no tags; an id whose
    # tag rows were rejected is not
    unlabeled_is_empty = ~F.col("_any_labels") if empty_when_unlabeled else F.lit(False)
    state = (
        F.when(own["s"] != "ok", own)
        .when(is_labels & ~tables["predictions"]["ok"],
              _outcome("quarantined", "missing_prediction", "no prediction row for this id", ID))
        .when(~is_labels & ~tables["labels"]["ok"] & ~unlabeled_is_empty,
              _outcome("quarantined", "missing_labels", "no accepted labels row for this id",
                       ID))
        .otherwise(own))
    rows = rows.withColumn("_state", state)
    ok = F.col("_state.s") == "ok"
    lead = ok & ~is_labels & (F.col("_unit").isNull() | (F.col("_unit") == 0))
    quarantined = F.col("_state.s") == "quarantined"
    raw = F.when(is_labels, F.to_json("_raw_labels")).otherwise(F.to_json("_raw_predictions"))
    return rows.select(
        "_source", ID, F.col("_state.s").alias("_status"), F.col("_state.r").alias("_reason"),
        F.col("_state.d").alias("_detail"), F.col("_state.c").alias("_column"),
        F.when(quarantined, raw).alias("_row_json"),
        "_repeated",  # every labels format reports it; null on prediction rows
        lead.alias("_lead"),
        F.when(lead, F.coalesce(F.col("_label_set"), F.array().cast("array<int>"))).alias(LABELS),
        F.when(lead, F.col("_vector")).alias(PROBS))


def _quarantine_rows(status: DataFrame) -> DataFrame:
    source = F.when(F.col("_source") == LABELS_SOURCE, SOURCES[0]).otherwise(SOURCES[1])
    return (status.filter(F.col("_status") == "quarantined")
            .select(source.alias("source"), F.col(ID).cast("string").alias("id"),
                    F.col("_reason").alias("reason"), F.col("_detail").alias("detail"),
                    F.col("_row_json").alias("row_json"), F.col("_column").alias("column")))


def _counts(status: DataFrame, rows_in: tuple[int, int]
            ) -> tuple[SourceCounts, SourceCounts, int]:
    """Rows per table, state and reason, and the number of examples to audit, in one job."""
    found = (status.groupBy("_source", "_status", "_reason")
             .agg(F.count(F.lit(1)).alias("n"), F.sum("_repeated").alias("repeated"),
                  F.count_if("_lead").alias("examples"))
             .collect())
    counts = []
    for source, rows in enumerate(rows_in):
        by_status = {"ok": 0, "quarantined": 0, "collapsed": 0}
        reasons: dict[str, int] = {}
        repeated = 0
        for row in (r for r in found if r["_source"] == source):
            by_status[row["_status"]] += row["n"]
            if row["_status"] == "quarantined":
                reasons[row["_reason"]] = reasons.get(row["_reason"], 0) + row["n"]
            if row["_status"] == "ok":
                repeated += int(row["repeated"] or 0)
        counts.append(SourceCounts(rows, by_status["ok"], by_status["quarantined"],
                                   by_status["collapsed"], dict(sorted(reasons.items())),
                                   repeated))
    return counts[0], counts[1], sum(int(r["examples"]) for r in found)


def _partitions(spark: SparkSession, labels_in: int, predictions_in: int, k: int,
                single: bool) -> int:
    """Enough partitions for about `spark.sql.adaptive.advisoryPartitionSizeInBytes` each
    (rows in memory: id, the vector, the tags), never fewer than
    `spark.sql.shuffle.partitions`; each becomes a block of the intake's cache."""
    configured = int(spark.conf.get("spark.sql.shuffle.partitions", "200"))
    # Spark's own parser for size strings ("64MB", "1g", "67108864")
    target = spark.sparkContext._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(
        spark.conf.get("spark.sql.adaptive.advisoryPartitionSizeInBytes", "64m"))
    size = predictions_in * (k * (4 if single else 8) + 48) + labels_in * 64
    return max(configured, -(-size // target))


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
    id_types = [c.rows.schema[ID].dataType for c in (checked_labels, checked_predictions)]
    if id_types[0] != id_types[1]:
        raise InputError("predictions", inp.id_column, "must have the type of the labels "
                         f"table's id ({id_types[0].simpleString()}), found "
                         f"{id_types[1].simpleString()}")
    single = isinstance(prediction_element_type(predictions, inp, names), T.FloatType)
    empty_when_unlabeled = inp.labels_format == "long" and inp.unlabeled_ids == "empty"
    tagged = _tagged(checked_labels, LABELS_SOURCE).unionByName(
        _tagged(checked_predictions, PREDICTIONS_SOURCE), allowMissingColumns=True)
    spark = labels.sparkSession
    status = cached(intake_status(
        tagged, checked_labels, checked_predictions,
        k if inp.predictions_format == "long" else None, empty_when_unlabeled,
        _partitions(spark, labels_in, predictions_in, k, single),
    ))
    try:
        label_counts, prediction_counts, num_rows = _counts(status, (labels_in, predictions_in))
        quarantine = _quarantine_rows(status)
        _apply_policy(config, quarantine, label_counts, prediction_counts)
        _check_accounting(label_counts, prediction_counts, num_rows, inp.labels_format,
                          inp.predictions_format, inp.unlabeled_ids)
        if num_rows == 0:
            raise InputError("labels", None, "no rows left to audit after the checks "
                             f"(quarantined: labels {label_counts.quarantined}, predictions "
                             f"{prediction_counts.quarantined})")
    except Exception:
        status.unpersist()
        raise
    joined = status.filter(F.col("_lead")).select(ID, LABELS, PROBS)
    return JoinedInput(joined, num_rows, k, single, id_types[0], names,
                       quarantine.drop("column"), label_counts, prediction_counts, (status,))


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

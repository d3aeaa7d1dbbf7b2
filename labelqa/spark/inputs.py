"""Read the label and prediction tables, check them, and join them on the id.

Bad input stops the run with an `InputError` naming the table, the column, the rule and the
smallest offending id; no row is ever dropped silently. Checking costs one aggregation over
the joined rows (which the audit persists anyway) plus two row counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.config import AuditConfig, InputConfig
from labelqa.core.constants import FLOATING_POINT_COMPARISON
from labelqa.errors import InputError
from labelqa.spark.arrow import ID, LABELS, PROBS


@dataclass(frozen=True)
class JoinedInput:
    """The joined rows (columns id, labels, pred_probs) and what the checks learned."""

    rows: DataFrame
    num_rows: int
    num_classes: int
    single_precision: bool
    id_type: T.DataType
    labels_rows: int
    predictions_rows: int


def read_parquet(spark: SparkSession, path: str, table: str) -> DataFrame:
    try:
        return spark.read.parquet(path)
    except AnalysisException as error:
        reason = str(error).splitlines()[0]
        raise InputError(table, None, f"cannot read Parquet at {path!r}: {reason}") from None


def _column(df: DataFrame, table: str, name: str, accepted: tuple[type, ...], wanted: str
            ) -> T.DataType:
    fields = {f.name: f.dataType for f in df.schema.fields}
    if name not in fields:
        raise InputError(table, name, f"column not found (columns: {', '.join(fields)})")
    data_type = fields[name]
    element = data_type.elementType if isinstance(data_type, T.ArrayType) else None
    ok = (isinstance(element, accepted) if wanted.startswith("array")
          else isinstance(data_type, accepted))
    if not ok:
        raise InputError(table, name, f"must be {wanted}, found {data_type.simpleString()}")
    return data_type


def _id_column(df: DataFrame, table: str, name: str) -> Column:
    data_type = _column(df, table, name, (T.IntegralType, T.StringType), "int64 or string")
    column = F.col(name)
    return (column.cast("long") if isinstance(data_type, T.IntegralType) else column).alias(ID)


def _first_id(condition: Column) -> Column:
    """Smallest id where `condition` holds (a deterministic example for messages)."""
    return F.min(F.when(condition, F.col(ID)))


def join_inputs(labels: DataFrame, predictions: DataFrame, config: AuditConfig) -> JoinedInput:
    inp = config.input
    label_ids = _id_column(labels, "labels", inp.id_column)
    prediction_ids = _id_column(predictions, "predictions", inp.id_column)
    _column(labels, "labels", inp.labels_column, (T.IntegralType,), "array<int>")
    probs_type = _column(predictions, "predictions", inp.predictions_column,
                         (T.FloatType, T.DoubleType), "array<float> or array<double>")
    left = labels.select(label_ids, F.col(inp.labels_column).cast("array<int>").alias(LABELS))
    right = predictions.select(prediction_ids, F.col(inp.predictions_column).alias(PROBS))
    if left.schema[ID].dataType != right.schema[ID].dataType:
        raise InputError("predictions", inp.id_column,
                         f"id type {right.schema[ID].dataType.simpleString()} differs from the "
                         f"labels' {left.schema[ID].dataType.simpleString()}")
    labels_rows, predictions_rows = left.count(), right.count()
    # every later pass reads the joined rows: join once (materialised by the checks below)
    joined = left.join(right, ID, "inner").persist(StorageLevel.MEMORY_AND_DISK)

    try:
        num_rows, num_classes = _check(joined, left, right, labels_rows, predictions_rows, inp)
    except InputError:
        joined.unpersist()
        raise
    single = isinstance(probs_type.elementType, T.FloatType)
    return JoinedInput(joined, num_rows, num_classes, single, left.schema[ID].dataType,
                       labels_rows, predictions_rows)


def _check(joined: DataFrame, left: DataFrame, right: DataFrame, labels_rows: int,
           predictions_rows: int, inp: InputConfig) -> tuple[int, int]:
    """One aggregation over the joined rows; raise on the first broken rule."""
    size = F.size(PROBS)
    low, high = -FLOATING_POINT_COMPARISON, 1 + FLOATING_POINT_COMPARISON
    bad_prob = F.exists(PROBS, lambda p: p.isNull() | F.isnan(p) | (p < low) | (p > high))
    bad_label = F.exists(LABELS, lambda k: k.isNull() | (k < 0) | (k >= size))
    stats = joined.agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct(ID).alias("ids"),
        F.min(size).alias("min_size"), F.max(size).alias("max_size"),
        _first_id(F.col(LABELS).isNull()).alias("null_labels"),
        _first_id(F.col(PROBS).isNull()).alias("null_probs"),
        _first_id(F.col(PROBS).isNotNull() & bad_prob).alias("bad_prob"),
        _first_id(F.col(LABELS).isNotNull() & F.col(PROBS).isNotNull() & bad_label
                  ).alias("bad_label"),
    ).first()

    if stats["null_labels"] is not None:
        raise InputError("labels", inp.labels_column, "must not be null (use [] for no tags)",
                         stats["null_labels"])
    if stats["null_probs"] is not None:
        raise InputError("predictions", inp.predictions_column, "must not be null",
                         stats["null_probs"])
    if stats["min_size"] != stats["max_size"]:
        example = joined.filter(size == stats["min_size"]).agg(F.min(ID)).first()[0]
        raise InputError("predictions", inp.predictions_column,
                         f"arrays must all have one length K; lengths range from "
                         f"{stats['min_size']} to {stats['max_size']}", example)
    if stats["bad_prob"] is not None:
        raise InputError("predictions", inp.predictions_column,
                         "probabilities must be finite and within [0, 1] (+-1e-6)",
                         stats["bad_prob"])
    if stats["bad_label"] is not None:
        raise InputError("labels", inp.labels_column,
                         "class indices must be within 0..K-1 (K = length of pred_probs)",
                         stats["bad_label"])
    _check_row_counts(left, right, stats["rows"], stats["ids"], labels_rows, predictions_rows)
    num_classes = stats["max_size"] or 0
    if stats["rows"] == 0:
        raise InputError("labels", None, "no rows to audit (the inputs are empty)")
    if num_classes < 2:
        raise InputError("predictions", inp.predictions_column,
                         f"need at least 2 classes, arrays have length {num_classes}")
    return stats["rows"], num_classes


def _check_row_counts(left: DataFrame, right: DataFrame, rows: int, ids: int,
                      labels_rows: int, predictions_rows: int) -> None:
    """Every input row must be audited exactly once: find the first one that is not."""
    if rows == ids == labels_rows == predictions_rows:
        return
    for table, df in (("labels", left), ("predictions", right)):
        if df.filter(F.col(ID).isNull()).limit(1).count():
            raise InputError(table, ID, "id must not be null")
        duplicate = df.groupBy(ID).count().filter("count > 1").agg(F.min(ID)).first()[0]
        if duplicate is not None:
            raise InputError(table, ID, "ids must be unique", duplicate)
    missing = left.join(right, ID, "left_anti").agg(F.min(ID)).first()[0]
    if missing is not None:
        raise InputError("predictions", ID, "every labelled id needs a prediction row", missing)
    extra = right.join(left, ID, "left_anti").agg(F.min(ID)).first()[0]
    raise InputError("labels", ID, "every predicted id needs a labels row", extra)

"""Read the label and prediction tables in the formats data lakes hold (contract: inputs).

Each reader turns its table into *checked rows*: one row per input row with the example id,
the row's content for the audit (its class indices, or its probabilities), and the first
rule it breaks, if any (reason, detail, column). Nothing is dropped here: deciding what is
audited, quarantined or collapsed is `labelqa.spark.intake`'s job.

Checked-row columns: `id`, `_unit` (the class of a long-format row, else null), `_classes`
(labels: array<int>), `_probs` (array predictions) or `_prob` (long predictions),
`_repeated` (tags collapsed within the row), `_reason`, `_detail`, `_column`, and the input's
own columns (kept for the quarantine table's `row_json`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.config import AuditConfig, InputConfig
from labelqa.core.constants import FLOATING_POINT_COMPARISON
from labelqa.errors import InputError
from labelqa.spark.names import column

LOW, HIGH = -FLOATING_POINT_COMPARISON, 1 + FLOATING_POINT_COMPARISON
RAW_PREFIX = "_in_"


@dataclass(frozen=True)
class CheckedRows:
    """`raw_columns`: every input column (the quarantine's `row_json` shows them all);
    `content_columns`: the ones the audit reads (id, tags or probabilities). Two rows of an id
    with equal content are one row repeated, whatever the other columns (an annotator, a
    timestamp) hold: the intake's fingerprint covers the content only."""

    rows: DataFrame
    source: str  # "labels" or "predictions"
    one_row_per_id: bool
    raw_columns: tuple[str, ...]
    content_columns: tuple[str, ...]
    probs_column: str = "_probs"  # the probability vector (one-row-per-id predictions)
    labels_column: str = "_classes"  # the tag list (one-row-per-id labels), or the tag


def _field(df: DataFrame, table: str, name: str) -> T.DataType:
    fields = {f.name: f.dataType for f in df.schema.fields}
    if name not in fields:
        raise InputError(table, name, f"column not found (columns: {', '.join(fields)})")
    return fields[name]


def _require(df: DataFrame, table: str, name: str, accepted: tuple[type, ...], wanted: str,
             element: bool = False) -> T.DataType:
    data_type = _field(df, table, name)
    inner = data_type.elementType if isinstance(data_type, T.ArrayType) else None
    ok = isinstance(inner, accepted) if element else isinstance(data_type, accepted)
    if not ok:
        raise InputError(table, name, f"must be {wanted}, found {data_type.simpleString()}")
    return data_type


def id_type(df: DataFrame, table: str, name: str) -> T.DataType:
    """The type the id is audited (and written) as: bigint for any integer type, or string."""
    data_type = _require(df, table, name, (T.IntegralType, T.StringType), "int64 or string")
    return T.LongType() if isinstance(data_type, T.IntegralType) else T.StringType()


def input_id_type(labels: DataFrame, predictions: DataFrame, inp: InputConfig) -> T.DataType:
    """The run's id type, from the schemas alone; both tables must agree."""
    found = id_type(labels, "labels", inp.id_column)
    other = id_type(predictions, "predictions", inp.id_column)
    if other != found:
        raise InputError("predictions", inp.id_column, "must have the type of the labels "
                         f"table's id ({found.simpleString()}), found {other.simpleString()}")
    return found


def id_expression(df: DataFrame, table: str, name: str) -> Column:
    return column(name).cast(id_type(df, table, name)).alias("id")


def _problem(*checks: tuple[Column, str, Column | str, str]) -> Column:
    """The first broken rule as struct(reason, detail, column)."""
    cases = [F.when(condition, F.struct(F.lit(reason).alias("reason"),
                                        (F.lit(detail) if isinstance(detail, str)
                                         else detail).alias("detail"),
                                        F.lit(col).alias("column")))
             for condition, reason, detail, col in checks]
    return F.coalesce(*cases) if cases else F.lit(None)


def _finish(df: DataFrame, source: str, one_row_per_id: bool, payload: list[Column],
            problem: Column, id_column: str, read: tuple[str, ...]) -> CheckedRows:
    raw = tuple(df.columns)
    renamed = [column(c).alias(RAW_PREFIX + c) for c in raw]
    checks = [F.when(column(id_column).isNull(),
                     F.struct(F.lit("null_id").alias("reason"),
                              F.lit(f"{id_column} is null").alias("detail"),
                              F.lit(id_column).alias("column")))]
    first = F.coalesce(*checks, problem)
    rows = df.select(*payload, first.alias("_problem"), *renamed)
    rows = rows.select("*", F.col("_problem.reason").alias("_reason"),
                       F.col("_problem.detail").alias("_detail"),
                       F.col("_problem.column").alias("_column")).drop("_problem")
    return CheckedRows(rows, source, one_row_per_id, raw, (id_column, *read))


def unknown_detail(what: str, value: str | Column) -> str | Column:
    """The detail of an unknown tag or class name (a string on the driver, a Column in Spark:
    the driver matches the two to add the class the name resembles)."""
    if isinstance(value, str):
        return f"{what} '{value}' is not one of the classes"
    return F.concat(F.lit(f"{what} '"), value, F.lit("' is not one of the classes"))


def _fmt(value: Column) -> Column:
    return F.coalesce(value.cast("string"), F.lit("null"))


# ---- labels ---------------------------------------------------------------------------------

def labels_rows(df: DataFrame, inp: InputConfig, names: tuple[str, ...]) -> CheckedRows:
    ident = id_expression(df, "labels", inp.id_column)
    k = len(names)
    if inp.labels_format == "array":
        _require(df, "labels", inp.labels_column, (T.IntegralType,), "array<int>", element=True)
        tags = column(inp.labels_column).cast("array<long>")
        bad = F.filter(tags, lambda x: x.isNull() | (x < 0) | (x >= k))
        problem = _problem(
            (tags.isNull(), "missing_labels", f"{inp.labels_column} is null",
             inp.labels_column),
            (F.size(bad) > 0, "bad_label_index",
             F.concat(F.lit("class index "), _fmt(bad[0]), F.lit(f" is outside 0..{k - 1}")),
             inp.labels_column))
        # the raw column is the tag list: the intake collapses repeated tags (and counts them)
        payload = [ident, F.lit(None).cast("int").alias("_unit")]
        checked = _finish(df, "labels", True, payload, problem, inp.id_column,
                          (inp.labels_column,))
        return dataclasses.replace(checked, labels_column=RAW_PREFIX + inp.labels_column)
    if inp.labels_format == "long":
        tag_type = _require(df, "labels", inp.tag_column, (T.StringType, T.IntegralType),
                            "a class name (string) or index (int)")
        tag = column(inp.tag_column)
        if isinstance(tag_type, T.StringType):
            lookup = F.create_map(*[x for i, n in enumerate(names) for x in (F.lit(n), F.lit(i))])
            unit = F.element_at(lookup, tag) if names else F.lit(None).cast("int")
            problem = _problem(
                (tag.isNull(), "unknown_class", f"{inp.tag_column} is null", inp.tag_column),
                (unit.isNull(), "unknown_class", unknown_detail("tag", tag), inp.tag_column))
        else:
            unit = tag.cast("int")
            problem = _problem(
                (tag.isNull(), "bad_label_index", f"{inp.tag_column} is null", inp.tag_column),
                ((tag < 0) | (tag >= k), "bad_label_index",
                 F.concat(F.lit("class index "), _fmt(tag), F.lit(f" is outside 0..{k - 1}")),
                 inp.tag_column))
        payload = [ident, unit.cast("int").alias("_unit")]
        checked = _finish(df, "labels", False, payload, problem, inp.id_column,
                          (inp.tag_column,))
        return dataclasses.replace(checked, labels_column="_unit")
    # onehot: one 0/1 or boolean column per class
    cells, checks = [], []
    for index, name in enumerate(names):
        data_type = _require(df, "labels", name, (T.BooleanType, T.IntegralType),
                             "boolean or 0/1")
        cell = column(name).cast("int") if isinstance(data_type, T.BooleanType) else column(name)
        cells.append(F.when(cell == 1, F.lit(index)))
        checks.append((cell.isNull() | ~cell.isin(0, 1), "bad_label_index",
                       F.concat(F.lit(f"column '{name}' is "), _fmt(column(name)),
                                F.lit(" (must be 0/1 or true/false)")), name))
    classes = F.filter(F.array(*cells), lambda x: x.isNotNull())
    payload = [ident, F.lit(None).cast("int").alias("_unit"), classes.alias("_classes")]
    return _finish(df, "labels", True, payload, _problem(*checks), inp.id_column, names)


# ---- predictions -----------------------------------------------------------------------------

def _probability_checks(values: Column, name: str, names: tuple[str, ...]) -> list:
    def non_finite(p: Column) -> Column:
        return p.isNull() | F.isnan(p) | (F.abs(p) == float("inf"))

    def outside(p: Column) -> Column:
        return (p < LOW) | (p > HIGH)

    def first(rule) -> Column:
        """The first element breaking `rule`, as struct(p, i): evaluated for bad rows only
        (a CASE branch), so good rows cost one `exists` scan and no per-element structs."""
        indexed = F.transform(values, lambda p, i: F.struct(p.alias("p"), i.alias("i")))
        return F.filter(indexed, lambda s: rule(s.p))[0]

    def which(element: Column) -> Column:
        """The class by name, then its index: "class 'dog' (index 2)"."""
        named = F.element_at(F.array(*[F.lit(n) for n in names]), element.i + 1) \
            if names else F.lit(None).cast("string")
        return F.concat(F.lit("class '"), F.coalesce(named, F.lit("?")), F.lit("' (index "),
                        _fmt(element.i), F.lit(")"))

    bad, out = first(non_finite), first(outside)
    return [
        (F.exists(values, non_finite), "non_finite",
         F.concat(F.lit("probability of "), which(bad), F.lit(" is "), _fmt(bad.p)), name),
        (F.exists(values, outside), "out_of_range",
         F.concat(F.lit("probability of "), which(out), F.lit(" is "), _fmt(out.p),
                  F.lit(" (outside [0, 1] +- 1e-6)")), name),
    ]


def prediction_element_type(df: DataFrame, inp: InputConfig, names: tuple[str, ...]
                            ) -> T.DataType:
    """float (float32 audit) or double, from the prediction columns' types."""
    if inp.predictions_format == "array":
        data_type = _require(df, "predictions", inp.predictions_column,
                             (T.FloatType, T.DoubleType), "array<float> or array<double>",
                             element=True)
        return data_type.elementType
    if inp.predictions_format == "long":
        return _require(df, "predictions", inp.prob_column, (T.FloatType, T.DoubleType),
                        "float or double")
    types = [_require(df, "predictions", inp.prediction_prefix + n, (T.FloatType, T.DoubleType),
                      "float or double") for n in names]
    return T.FloatType() if all(isinstance(t, T.FloatType) for t in types) else T.DoubleType()


def predictions_rows(df: DataFrame, inp: InputConfig, names: tuple[str, ...]) -> CheckedRows:
    ident = id_expression(df, "predictions", inp.id_column)
    element = prediction_element_type(df, inp, names)
    k = len(names)
    if inp.predictions_format in ("array", "wide"):
        if inp.predictions_format == "array":
            values, name = column(inp.predictions_column), inp.predictions_column
        else:
            values = F.array(*[column(inp.prediction_prefix + n).cast(element) for n in names])
            name = inp.prediction_prefix + "*"
        problem = _problem(
            (values.isNull(), "non_finite", f"{name} is null", name),
            (F.size(values) != k, "wrong_length",
             F.concat(F.lit("has "), F.size(values).cast("string"),
                      F.lit(f" probabilities, expected K={k}")), name),
            *_probability_checks(values, name, names))
        if inp.predictions_format == "array":
            # the raw column is the vector: no second copy through the shuffles and caches
            payload = [ident, F.lit(None).cast("int").alias("_unit")]
            checked = _finish(df, "predictions", True, payload, problem, inp.id_column,
                              (inp.predictions_column,))
            return dataclasses.replace(checked,
                                       probs_column=RAW_PREFIX + inp.predictions_column)
        payload = [ident, F.lit(None).cast("int").alias("_unit"), values.alias("_probs")]
        return _finish(df, "predictions", True, payload, problem, inp.id_column,
                       tuple(inp.prediction_prefix + n for n in names))
    class_type = _require(df, "predictions", inp.class_column, (T.StringType, T.IntegralType),
                          "a class name (string) or index (int)")
    cls, prob = column(inp.class_column), column(inp.prob_column)
    if isinstance(class_type, T.StringType):
        lookup = F.create_map(*[x for i, n in enumerate(names) for x in (F.lit(n), F.lit(i))])
        unit = F.element_at(lookup, cls)
        unknown = unknown_detail("class", _fmt(cls))
    else:
        unit = F.when((cls >= 0) & (cls < k), cls.cast("int"))
        unknown = F.concat(F.lit("class index "), _fmt(cls), F.lit(f" is outside 0..{k - 1}"))
    problem = _problem(
        (unit.isNull(), "unknown_class", unknown, inp.class_column),
        (prob.isNull() | F.isnan(prob) | (F.abs(prob) == float("inf")), "non_finite",
         F.concat(F.lit("probability is "), _fmt(prob)), inp.prob_column),
        ((prob < LOW) | (prob > HIGH), "out_of_range",
         F.concat(F.lit("probability "), _fmt(prob), F.lit(" is outside [0, 1] +- 1e-6")),
         inp.prob_column))
    payload = [ident, unit.cast("int").alias("_unit"), prob.cast(element).alias("_prob")]
    return _finish(df, "predictions", False, payload, problem, inp.id_column,
                   (inp.class_column, inp.prob_column))


# ---- hints: the format a table looks like, when the configured one does not fit -------------

def _is(data_type: T.DataType, *kinds: type) -> bool:
    return isinstance(data_type, kinds)


def fitting_formats(df: DataFrame, table: str, inp: InputConfig) -> list[str]:
    """The formats whose columns `df` has (labels: array, long, onehot; predictions: array,
    long, wide), judged by column names and types alone."""
    types = {f.name: f.dataType for f in df.schema.fields}
    others = [t for name, t in types.items() if name != inp.id_column]
    fits = []
    if table == "labels":
        column_type = types.get(inp.labels_column)
        if _is(column_type, T.ArrayType) and _is(column_type.elementType, T.IntegralType):
            fits.append("array")
        if _is(types.get(inp.tag_column), T.StringType, T.IntegralType):
            fits.append("long")
        if len(others) >= 2 and all(_is(t, T.BooleanType, T.IntegralType) for t in others):
            fits.append("onehot")
        return fits
    column_type = types.get(inp.predictions_column)
    if _is(column_type, T.ArrayType) and _is(column_type.elementType, T.FloatType,
                                              T.DoubleType):
        fits.append("array")
    if (_is(types.get(inp.class_column), T.StringType, T.IntegralType)
            and _is(types.get(inp.prob_column), T.FloatType, T.DoubleType)):
        fits.append("long")
    if len(others) >= 2 and all(_is(t, T.FloatType, T.DoubleType) for t in others):
        fits.append("wide")
    return fits


def with_hint(error: InputError, labels: DataFrame, predictions: DataFrame,
              config: AuditConfig) -> InputError:
    """`error` (a table's column missing or of the wrong type) with the fix it suggests: the
    format the table looks like, or, when every column of a wide or onehot table is read as
    a class, naming the classes."""
    if error.table not in ("labels", "predictions") or error.column is None:
        return error
    inp = config.input
    df = labels if error.table == "labels" else predictions
    configured = inp.labels_format if error.table == "labels" else inp.predictions_format
    fits = [f for f in fitting_formats(df, error.table, inp) if f != configured]
    if fits:
        what = {"wide": " (one probability column per class, named by the class)",
                "onehot": " (one 0/1 column per class, named by the class)"}.get(fits[0], "")
        hint = (f"; the table looks like the {fits[0]} format{what}: set "
                f"input.{error.table}_format={fits[0]}")
    elif configured in ("wide", "onehot") and config.classes is None \
            and config.classes_path is None and error.column != inp.id_column:
        hint = ("; every column but the id is read as a class: name the classes with "
                "classes or classes_path" + (", or give their columns a prefix "
                                             "(input.prediction_prefix)"
                                             if configured == "wide" else ""))
    else:
        return error
    return InputError(error.table, error.column, error.rule + hint, error.example)

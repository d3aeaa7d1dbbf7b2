"""Read the features table of `labelqa predict` as checked rows, like the audit's inputs.

Features come as Parquet with the id and one vector per example: an `array<float|double>`
column or an MLlib vector (`model.features_column`), or one numeric column per feature
(`model.feature_columns`). A row's own faults: a null id (`null_id`), a vector whose length is
not the run's (`wrong_length`), a null, NaN or infinite value (`non_finite`). The per-id rules
(duplicates, a label row without features and the reverse) are the audit's intake's.
"""

from __future__ import annotations

import dataclasses

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.config import AuditConfig, ModelConfig
from labelqa.errors import InputError
from labelqa.spark.formats import RAW_PREFIX, CheckedRows, _field, _finish, _fmt, _problem
from labelqa.spark.formats import id_type as table_id_type
from labelqa.spark.names import column

TABLE = "features"
#: where a vector's values are read: the (converted) features column
VECTOR = "_features"


def _is_vector(data_type: T.DataType) -> bool:
    return type(data_type).__name__ == "VectorUDT"


def feature_vectors(df: DataFrame, model: ModelConfig) -> tuple[DataFrame, str]:
    """`df` with its features as one array column (an MLlib vector converted in the JVM, the
    feature columns gathered as doubles), and that column's name. Checks the schema only."""
    if model.feature_columns is not None:
        for name in model.feature_columns:
            data_type = _field(df, TABLE, name)
            if not isinstance(data_type, T.NumericType) or isinstance(data_type, T.DecimalType):
                raise InputError(TABLE, name, "must be a number (float, double or integer), "
                                 f"found {data_type.simpleString()}")
        vector = F.array(*[column(c).cast("double") for c in model.feature_columns])
        return df.withColumn(VECTOR, vector), VECTOR
    name = model.features_column
    data_type = _field(df, TABLE, name)
    if _is_vector(data_type):
        from pyspark.ml.functions import vector_to_array

        return df.withColumn(name, vector_to_array(column(name), "float64")), name
    if not (isinstance(data_type, T.ArrayType)
            and isinstance(data_type.elementType, (T.FloatType, T.DoubleType))):
        raise InputError(TABLE, name, "must be array<float>, array<double> or an MLlib vector, "
                         f"found {data_type.simpleString()} (or name numeric columns with "
                         "model.feature_columns)")
    return df, name


def features_rows(df: DataFrame, config: AuditConfig, vector: str, width: int) -> CheckedRows:
    """One checked row per features row; `vector`: the array column `feature_vectors` gave,
    `width`: the run's number of features."""
    inp = config.input
    ident = column(inp.id_column).cast(table_id_type(df, TABLE, inp.id_column)).alias("id")
    values = column(vector)
    shown = (", ".join(config.model.feature_columns) if config.model.feature_columns
             else vector)

    def non_finite(x: Column) -> Column:
        return x.isNull() | F.isnan(x) | (F.abs(x) == float("inf"))

    indexed = F.transform(values, lambda x, i: F.struct(x.alias("x"), i.alias("i")))
    bad = F.filter(indexed, lambda s: non_finite(s.x))[0]
    problem = _problem(
        (values.isNull(), "non_finite", f"{shown} is null", shown),
        (F.size(values) != width, "wrong_length",
         F.concat(F.lit("has "), F.size(values).cast("string"),
                  F.lit(f" features, expected {width}")), shown),
        (F.exists(values, non_finite), "non_finite",
         F.concat(F.lit("feature "), _fmt(bad.i), F.lit(" is "), _fmt(bad.x)), shown))
    payload = [ident, F.lit(None).cast("int").alias("_unit")]
    read = tuple(config.model.feature_columns or (vector,))
    checked = _finish(df, TABLE, True, payload, problem, inp.id_column, read)
    return dataclasses.replace(checked, probs_column=RAW_PREFIX + vector)


def features_id_type(df: DataFrame, config: AuditConfig) -> T.DataType:
    return table_id_type(df, TABLE, config.input.id_column)

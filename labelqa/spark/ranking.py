"""Exact global rank by (key, id) without moving all rows to one partition."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def global_rank(df: DataFrame, key: str, id_column: str, name: str, low: float = 0.0,
                high: float = 1.0, bins: int = 4096) -> DataFrame:
    """`df` with column `name` = 1 + the number of rows before it in (key, id) order.

    Rows are spread over equal-width key bins; the rank is the count of rows in lower bins
    (from a bins-sized table) plus the row number inside the bin.
    """
    bin_of = F.least(F.greatest(F.floor((F.col(key) - low) * (bins / (high - low))), F.lit(0)),
                     F.lit(bins - 1))
    binned = df.withColumn("_bin", bin_of)
    before = (binned.groupBy("_bin").count()
              .withColumn("_before", F.coalesce(
                  F.sum("count").over(Window.orderBy("_bin")
                                      .rowsBetween(Window.unboundedPreceding, -1)), F.lit(0)))
              .drop("count"))
    within = Window.partitionBy("_bin").orderBy(key, id_column)
    return (binned.join(F.broadcast(before), "_bin")
            .withColumn(name, (F.col("_before") + F.row_number().over(within)).cast("int"))
            .drop("_bin", "_before"))

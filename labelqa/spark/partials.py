"""Sums of NumPy partial statistics over all rows, computed by Spark.

Each task reduces its batches to one dict of int64 arrays; Spark adds them up by
(name, position) with an exact integer sum, so the totals do not depend on the partitioning
or on task retries. Only these K-sized totals reach the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from labelqa.core.batch import Batch
from labelqa.spark.blocks import add_totals, batch_of, blocks_of, statistic_rows

PARTIAL_SCHEMA = "name string, position long, value long"
Partials = dict[str, np.ndarray]


def _record_batch(totals: Partials) -> pa.RecordBatch:
    names, positions, values = statistic_rows(totals)
    return pa.RecordBatch.from_arrays(
        [pa.array(names, type=pa.string()), pa.array(positions, type=pa.int64()),
         pa.array(values, type=pa.int64())], names=["name", "position", "value"])


def partial_sums(blocks: DataFrame, compute: Callable[[Batch], Partials]) -> DataFrame:
    """(name, position, value) totals of `compute` over every examples block."""

    def per_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        totals: Partials = {}
        for block in blocks_of(batches):
            add_totals(totals, compute(batch_of(block)))
        yield _record_batch(totals)

    return (blocks.mapInArrow(per_task, PARTIAL_SCHEMA)
            .groupBy("name", "position").agg(F.sum("value").alias("value")))


def collect_partials(sums: DataFrame, shapes: dict[str, tuple[int, ...]]) -> Partials:
    """The totals as arrays of the given shapes (absent positions are zero)."""
    out = {name: np.zeros(int(np.prod(shape)), dtype=np.int64) for name, shape in shapes.items()}
    table = sums.filter(F.col("name").isin(list(shapes))).toArrow()
    names = table.column("name").to_numpy(zero_copy_only=False)
    positions = table.column("position").to_numpy()
    values = table.column("value").to_numpy()
    for name in shapes:
        chosen = names == name
        out[name][positions[chosen]] = values[chosen]
    return {name: out[name].reshape(shape) for name, shape in shapes.items()}

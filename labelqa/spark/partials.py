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
from labelqa.spark.arrow import batch_of

PARTIAL_SCHEMA = "name string, position long, value long"
Partials = dict[str, np.ndarray]


def _record_batch(totals: Partials) -> pa.RecordBatch:
    names, positions, values = [], [], []
    for name, array in totals.items():
        flat = np.asarray(array, dtype=np.int64).reshape(-1)
        where = np.flatnonzero(flat)
        names.extend([name] * len(where))
        positions.append(where)
        values.append(flat[where])
    return pa.RecordBatch.from_arrays(
        [pa.array(names, type=pa.string()),
         pa.array(np.concatenate(positions) if positions else [], type=pa.int64()),
         pa.array(np.concatenate(values) if values else [], type=pa.int64())],
        names=["name", "position", "value"])


def partial_sums(joined: DataFrame, num_classes: int, compute: Callable[[Batch], Partials]
                 ) -> DataFrame:
    """(name, position, value) totals of `compute` over every batch of `joined`."""

    def per_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        totals: Partials = {}
        for record_batch in batches:
            if record_batch.num_rows == 0:
                continue
            for name, array in compute(batch_of(record_batch, num_classes)).items():
                totals[name] = totals[name] + array if name in totals else np.array(array)
        yield _record_batch(totals)

    return (joined.mapInArrow(per_task, PARTIAL_SCHEMA)
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

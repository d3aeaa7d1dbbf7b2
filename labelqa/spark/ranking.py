"""Exact `issue_rank` (1 = most severe: by score, then id) without moving the wide rows.

The scoring pass counts the flagged examples per score bin (a RANK_BINS-sized histogram,
summed exactly). The flagged examples' narrow (score, id) rows are then ranked inside their
bin by a window, offset by the counts of the lower bins, and sent back to the partition of
the block that holds them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from labelqa.spark import blocks as bl

RANK_BINS = 4096


def rank_bins(scores: np.ndarray) -> np.ndarray:
    """Monotone bin of each score (scores outside [0, 1] go to the first or last bin)."""
    return np.clip(np.floor(np.asarray(scores) * RANK_BINS), 0, RANK_BINS - 1).astype(np.int64)


def ranked(scored_blocks: DataFrame, counts: np.ndarray, id_type: str) -> DataFrame:
    """(part, id, issue_rank) of every flagged example."""
    schema = f"part int, bin int, score double, id {id_type}"

    def flagged(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for record_batch in batches:
            parts = record_batch.column("part")
            for index, value in enumerate(record_batch.column("block")):
                block = bl.decode(value.as_buffer())
                chosen = np.flatnonzero(block.column("is_label_issue").to_numpy(
                    zero_copy_only=False))
                if not len(chosen):
                    continue
                scores = block.column("label_quality_score").to_numpy()[chosen]
                yield pa.RecordBatch.from_arrays(
                    [pa.array(np.full(len(chosen), parts[index].as_py(), np.int32)),
                     pa.array(rank_bins(scores).astype(np.int32)), pa.array(scores),
                     block.column(bl.ID).take(pa.array(chosen))],
                    names=["part", "bin", "score", "id"])

    before = np.concatenate([[0], np.cumsum(counts)[:-1]])
    spark = scored_blocks.sparkSession
    offsets = spark.createDataFrame(
        [(int(b), int(before[b])) for b in np.flatnonzero(counts)], "bin int, before long")
    within = Window.partitionBy("bin").orderBy("score", "id")
    return (scored_blocks.mapInArrow(flagged, schema)
            .join(F.broadcast(offsets), "bin")
            .select("part", "id", (F.col("before") + F.row_number().over(within))
                    .alias("issue_rank")))

"""Exact "quota smallest (key, id) per group" selections in Spark, without a global sort.

1. While the confident joint is aggregated, every task also counts the eligible pairs of each
   selection in B equal-width key bins per group (a K-sized histogram, summed exactly).
2. On the driver, the histogram gives each group's boundary bin: every pair in a lower bin is
   selected, none in a higher one.
3. Only the pairs inside boundary bins are ranked, by a window over (key, id); the last
   selected one becomes the group's cut `(key, id)`. Those pairs are few: about 1/B of the
   candidates, unless many share one key (discretised probabilities), where ties are broken
   by id as the contract says.

Every row is then flagged locally by comparing its `(key, id)` with the cut.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DataType

from labelqa.core.batch import Batch
from labelqa.core.flags import KEY_RANGES, Cut, Selection, num_groups
from labelqa.spark.blocks import ID, batch_of, blocks_of

HISTOGRAM_CELLS = 1 << 17


def bins_per_group(kind: str, num_classes: int) -> int:
    groups = num_groups(kind, num_classes)
    return int(min(4096, max(16, 1 << int(np.log2(max(HISTOGRAM_CELLS // groups, 1))))))


def key_bins(keys: np.ndarray, kind: str, bins: int) -> np.ndarray:
    """Monotone bin of each key (keys outside the range go to the first or last bin)."""
    low, high = KEY_RANGES[kind]
    scaled = np.floor((keys - low) * (bins / (high - low)))
    return np.clip(scaled, 0, bins - 1).astype(np.int64)


def histogram_partials(batch: Batch, selections: tuple[Selection, ...]) -> dict[str, np.ndarray]:
    out = {}
    for selection in selections:
        bins = bins_per_group(selection.kind, batch.num_classes)
        size = num_groups(selection.kind, batch.num_classes) * bins
        pairs = selection.pairs(batch)
        cells = pairs.groups * bins + key_bins(pairs.keys, selection.kind, bins)
        out[f"hist:{selection.name}"] = np.bincount(cells, minlength=size).astype(np.int64)
    return out


def histogram_shapes(selections: tuple[Selection, ...], num_classes: int
                     ) -> dict[str, tuple[int, int]]:
    return {f"hist:{s.name}": (num_groups(s.kind, num_classes), bins_per_group(s.kind, num_classes))
            for s in selections}


def find_cuts(spark: SparkSession, blocks: DataFrame, num_classes: int,
              selections: tuple[Selection, ...], histograms: dict[str, np.ndarray],
              id_type: DataType, id_dtype: np.dtype) -> dict[str, Cut]:
    """The cut of every selection; one small Spark job ranks the boundary bins' pairs."""
    cuts: dict[str, Cut] = {}
    boundary_bin: dict[str, np.ndarray] = {}
    needs = []
    for index, selection in enumerate(selections):
        counts = histograms[f"hist:{selection.name}"]
        cut = Cut.everything(len(counts), id_dtype)
        boundary = np.full(len(counts), -1, dtype=np.int64)
        for group, quota in enumerate(selection.quotas):
            if quota <= 0 or not selection.enabled[group]:
                cut.keys[group] = -np.inf
            elif quota < counts[group].sum():
                through = np.cumsum(counts[group])
                bin_index = int(np.searchsorted(through, quota))
                boundary[group] = bin_index
                below = through[bin_index] - counts[group, bin_index]
                needs.append((index, group, int(quota - below)))
        cuts[selection.name], boundary_bin[selection.name] = cut, boundary
    if not needs:
        return cuts

    schema = f"selection int, grp long, key double, id {id_type.simpleString()}"

    def boundary_pairs(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for block in blocks_of(batches):
            batch = batch_of(block)
            for index, selection in enumerate(selections):
                bins = bins_per_group(selection.kind, num_classes)
                pairs = selection.pairs(batch)
                inside = key_bins(pairs.keys, selection.kind, bins) == \
                    boundary_bin[selection.name][pairs.groups]
                if not inside.any():
                    continue
                yield pa.RecordBatch.from_arrays(
                    [pa.array(np.full(inside.sum(), index, dtype=np.int32)),
                     pa.array(pairs.groups[inside]), pa.array(pairs.keys[inside]),
                     block.column(ID).take(pa.array(pairs.rows[inside]))],
                    names=["selection", "grp", "key", "id"])

    wanted = spark.createDataFrame(needs, "selection int, grp long, need long")
    order = Window.partitionBy("selection", "grp").orderBy("key", "id")
    found = (blocks.mapInArrow(boundary_pairs, schema)
             .withColumn("rank", F.row_number().over(order))
             .join(F.broadcast(wanted), ["selection", "grp"])
             .filter(F.col("rank") == F.col("need"))
             .select("selection", "grp", "key", "id").collect())
    for row in found:
        cut = cuts[selections[row["selection"]].name]
        cut.keys[row["grp"]] = row["key"]
        cut.ids[row["grp"]] = row["id"]
    if len(found) != len(needs):  # pragma: no cover - the histogram and the rows disagree
        raise RuntimeError(f"selection cut: {len(needs)} boundaries, {len(found)} found")
    return cuts

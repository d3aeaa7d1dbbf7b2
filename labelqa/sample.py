"""Deterministic synthetic multi-label data with known annotation errors (demo and tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Sample:
    ids: np.ndarray
    given: np.ndarray  # (n, K) bool, annotations with the injected errors
    truth: np.ndarray  # (n, K) bool, the tags before the errors
    probs: np.ndarray  # (n, K) out-of-sample probabilities of a simulated model

    @property
    def injected(self) -> np.ndarray:
        return self.given != self.truth

    @property
    def label_lists(self) -> list[list[int]]:
        return [list(map(int, np.flatnonzero(row))) for row in self.given]


def generate(num_rows: int, num_classes: int, seed: int = 0, *, dtype: type = np.float64,
             missing_rate: float = 0.04, extra_rate: float = 0.01, decimals: int | None = None,
             prevalence: np.ndarray | None = None, string_ids: bool = False,
             id_offset: int = 0, separation: float = 2.0, model_noise: float = 1.3) -> Sample:
    """Tags with class prevalences, a model whose probabilities separate them imperfectly,
    and annotators who forget tags (`missing_rate`) more often than add wrong ones."""
    rng = np.random.default_rng(seed)
    if prevalence is None:
        prevalence = rng.uniform(0.05, 0.45, num_classes)
    truth = rng.random((num_rows, num_classes)) < prevalence
    forgotten = truth & (rng.random(truth.shape) < missing_rate)
    added = ~truth & (rng.random(truth.shape) < extra_rate)
    given = truth ^ forgotten ^ added
    logits = rng.normal(0.0, model_noise, truth.shape) + np.where(truth, separation,
                                                                    -separation)
    probs = 1.0 / (1.0 + np.exp(-logits))
    if decimals is not None:
        probs = np.round(probs, decimals)
    numbers = np.arange(id_offset, id_offset + num_rows, dtype=np.int64)
    order = rng.permutation(num_rows)  # ids not in row order, so nothing relies on it
    ids = numbers[order]
    if string_ids:
        ids = np.array([f"item-{n:07d}" for n in ids], dtype=object)
    return Sample(ids, given, truth, probs.astype(dtype))


def label_table(sample: Sample) -> pa.Table:
    lists = [np.flatnonzero(row).astype(np.int32) for row in sample.given]
    return pa.table({"id": pa.array(list(sample.ids)),
                     "labels": pa.array(lists, type=pa.list_(pa.int32()))})


def prediction_table(sample: Sample) -> pa.Table:
    element = pa.float32() if sample.probs.dtype == np.float32 else pa.float64()
    offsets = np.arange(0, sample.probs.size + 1, sample.probs.shape[1], dtype=np.int32)
    probs = pa.ListArray.from_arrays(pa.array(offsets), pa.array(sample.probs.reshape(-1),
                                                                 type=element))
    return pa.table({"id": pa.array(list(sample.ids)), "pred_probs": probs})


def write_sample(sample: Sample, labels_path: str, predictions_path: str, *,
                 rows_per_file: int | None = None, shuffle_seed: int = 1) -> None:
    """Write the two tables as Parquet; predictions in another row order than labels."""
    labels = label_table(sample)
    order = np.random.default_rng(shuffle_seed).permutation(len(sample.ids))
    predictions = prediction_table(sample).take(pa.array(order))
    for table, path in ((labels, labels_path), (predictions, predictions_path)):
        if rows_per_file is None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            pq.write_table(table, path)
            continue
        os.makedirs(path, exist_ok=True)
        for part, start in enumerate(range(0, table.num_rows, rows_per_file)):
            pq.write_table(table.slice(start, rows_per_file), f"{path}/part-{part:05d}.parquet")


def label_table_long(sample: Sample, names: tuple[str, ...] | None = None) -> pa.Table:
    """One row per (id, tag): the tag's name, or its index when `names` is None."""
    rows, classes = np.nonzero(sample.given)
    tags = pa.array([names[k] for k in classes]) if names else pa.array(classes, pa.int32())
    return pa.table({"id": pa.array(list(sample.ids[rows])), "tag": tags})


def label_table_onehot(sample: Sample, names: tuple[str, ...]) -> pa.Table:
    columns = {"id": pa.array(list(sample.ids))}
    for k, name in enumerate(names):
        columns[name] = pa.array(sample.given[:, k])
    return pa.table(columns)


def prediction_table_wide(sample: Sample, names: tuple[str, ...], prefix: str = "") -> pa.Table:
    element = pa.float32() if sample.probs.dtype == np.float32 else pa.float64()
    columns = {"id": pa.array(list(sample.ids))}
    for k, name in enumerate(names):
        columns[prefix + name] = pa.array(sample.probs[:, k], type=element)
    return pa.table(columns)


def prediction_table_long(sample: Sample, names: tuple[str, ...] | None = None) -> pa.Table:
    """One row per (id, class, prob)."""
    element = pa.float32() if sample.probs.dtype == np.float32 else pa.float64()
    num_rows, num_classes = sample.probs.shape
    rows = np.repeat(np.arange(num_rows), num_classes)
    classes = np.tile(np.arange(num_classes), num_rows)
    labels = pa.array([names[k] for k in classes]) if names else pa.array(classes, pa.int32())
    return pa.table({"id": pa.array(list(sample.ids[rows])), "class": labels,
                     "prob": pa.array(sample.probs.reshape(-1), type=element)})

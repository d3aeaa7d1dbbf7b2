"""Flagged examples in the compact form they travel in, from the scoring pass to the task
of their score range (labelqa.spark.ranking), and finished there.

The finished rows carry their tags twice (indices and names) and an explanation: 339 bytes
per flagged row at 1M x 40 as Arrow IPC, half of it the explanation. Everything but the
flagged pairs' probabilities follows from the two label lists (the flagged classes are the
ones in exactly one of them), so the compact rows hold ids, both label lists, the score, the
count of flagged classes, the class scores when written, and those probabilities; the names
and the explanation are built by the ranking task, once per row as before.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labelqa.spark.explanation import Vocabulary, explanations

PAIR_PROBS = "flagged_probs"
#: the columns of the compact rows that the finished rows keep as they are
KEPT = ("id", "given_labels", "label_quality_score", "suggested_labels", "num_class_issues",
        "class_scores")


def compact(flagged: pa.RecordBatch, pair_rows: np.ndarray, pair_probs: np.ndarray
            ) -> pa.RecordBatch:
    """`flagged` (examples columns of flagged rows) reduced to the KEPT columns plus the
    probabilities of each row's flagged pairs, in (row, class) order; `pair_rows`: the row of
    each pair within `flagged` (non-decreasing)."""
    offsets = np.zeros(flagged.num_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(pair_rows, minlength=flagged.num_rows), out=offsets[1:])
    kept = [name for name in KEPT if name in flagged.schema.names]
    probs = pa.ListArray.from_arrays(pa.array(offsets), pa.array(pair_probs, pa.float64()))
    return pa.RecordBatch.from_arrays([*(flagged.column(name) for name in kept), probs],
                                      names=[*kept, PAIR_PROBS])


def _pair_keys(lists: pa.Array, num_classes: int) -> np.ndarray:
    rows = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    return rows * num_classes + pc.list_flatten(lists).to_numpy().astype(np.int64)


def finished(rows: pa.RecordBatch, vocabulary: Vocabulary) -> dict[str, pa.Array]:
    """The examples columns (but issue_rank) of compact flagged `rows`."""
    num_classes = len(vocabulary.names)
    given_labels, suggested_labels = rows.column("given_labels"), rows.column("suggested_labels")
    given_keys = _pair_keys(given_labels, num_classes)
    keys, counts = np.unique(np.concatenate([given_keys,
                                             _pair_keys(suggested_labels, num_classes)]),
                             return_counts=True)
    pairs = keys[counts == 1]  # sorted: (row, class) order, as the scoring pass found them
    probs = pc.list_flatten(rows.column(PAIR_PROBS)).to_numpy()
    if len(probs) != len(pairs):  # pragma: no cover - a broken invariant
        raise RuntimeError(f"{len(pairs)} flagged pairs, {len(probs)} probabilities")
    scores = rows.column("label_quality_score").to_numpy()
    columns = {name: rows.column(name) for name in KEPT if name in rows.schema.names}
    columns.update(
        given_tags=vocabulary.tags(given_labels),
        is_label_issue=pa.array(np.ones(rows.num_rows, dtype=bool)),
        suggested_tags=vocabulary.tags(suggested_labels),
        explanation=explanations(vocabulary, np.ones(rows.num_rows, dtype=bool), scores,
                                 pairs // num_classes, pairs % num_classes,
                                 np.isin(pairs, given_keys), probs))
    return columns

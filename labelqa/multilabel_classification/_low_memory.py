"""`low_memory=True`: cleanlab's mini-batch estimate (spec 5.2), per class, for all classes at
once except the batch means.

Per class (its one-vs-rest problem), over batches of 10,000 rows in row order: running
count-weighted thresholds; then the number of rows predicted on the other side than given
and confidently so; the issues are that many rows with the lowest score of the method over
all rows, minus the near-ties. The result is close to, not the same as, the default path.
"""

from __future__ import annotations

import numpy as np

from labelqa.core import flags as fl
from labelqa.core.batch import Batch
from labelqa.core.constants import FLOATING_POINT_COMPARISON, THRESHOLD_FLOOR
from labelqa.core.matrix import chunk_rows_for, row_slices
from labelqa.core.scores import class_scores

#: cleanlab's batch size for low_memory
BATCH_ROWS = 10_000


def _batch_means(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Per column, `np.mean` of the member rows' values as cleanlab takes it (NumPy's
    pairwise sum in the values' dtype), 2 where a column has no member; clipped at 2e-6.

    One `np.mean` per column and batch: a vectorised column sum adds in another order, and
    the thresholds it gives differ in the last bit.
    """
    means = [np.mean(values[members[:, k], k]) if members[:, k].any() else 2
             for k in range(values.shape[1])]
    return np.clip(means, THRESHOLD_FLOOR, None)


def running_thresholds(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(K, 2) thresholds `[t0, t1]`: the count-weighted mean of the batches' thresholds,
    clipped at 2e-6 after every batch (a side absent from the data ends at 2e-6)."""
    num_classes = probs.shape[1]
    thresholds = np.zeros((num_classes, 2))
    seen = np.zeros((num_classes, 2))
    one = probs.dtype.type(1)
    for rows in row_slices(len(probs), BATCH_ROWS):
        members, values = given[rows], probs[rows]
        counts = np.stack([(~members).sum(axis=0), members.sum(axis=0)], axis=1)
        batch = np.stack([_batch_means(one - values, ~members),
                          _batch_means(values, members)], axis=1)
        thresholds = (seen * thresholds + counts * batch) / np.clip(seen + counts, 1, None)
        thresholds = np.clip(thresholds, THRESHOLD_FLOOR, None)
        seen += counts
    return thresholds


def low_memory_flags(given: np.ndarray, probs: np.ndarray, method: str) -> np.ndarray:
    """(N, K) flags of cleanlab's `low_memory=True` path, ranked by `method`'s score."""
    num_rows, num_classes = probs.shape
    thresholds = running_thresholds(given, probs) - FLOATING_POINT_COMPARISON
    ids = np.arange(num_rows)
    counts = np.zeros(num_classes, dtype=np.int64)
    parts: list[fl.Pairs] = []
    # the lowest `count` scores: for self_confidence and normalized_margin every counted row
    # scores <= 0.5 (it is predicted on the other side), so only those rows are candidates
    bound = np.inf if method == "confidence_weighted_entropy" else 0.5
    for rows in row_slices(num_rows, chunk_rows_for(num_classes)):
        batch = Batch(ids[rows], given[rows], probs[rows])
        predicted = batch.probs > batch.complement  # argmax of [1 - p, p], a tie goes to 0
        predicted_prob = np.where(predicted, batch.probs, batch.complement)
        cut = np.where(predicted, thresholds[:, 1], thresholds[:, 0])
        counts += ((predicted_prob >= cut) & (predicted != batch.given)).sum(axis=0)
        scores = class_scores(batch, method, False, None)
        candidate_rows, candidate_classes = np.nonzero(scores <= bound)
        parts.append(fl.Pairs(candidate_rows + rows.start, candidate_classes,
                              candidate_classes.astype(np.int64),
                              scores[candidate_rows, candidate_classes]))
    pairs = fl.Pairs(*(np.concatenate([getattr(p, name) for p in parts])
                       for name in ("rows", "classes", "groups", "keys")))
    chosen = fl.exact_cut(pairs, ids, counts).selects(pairs, ids)
    flags = np.zeros((num_rows, num_classes), dtype=bool)
    flags[pairs.rows[chosen], pairs.classes[chosen]] = True
    for rows in row_slices(num_rows, chunk_rows_for(num_classes)):
        flags[rows] &= fl.disagreements(Batch(ids[rows], given[rows], probs[rows]))
    return flags

"""Which (example, class) annotations each filter flags (spec 3.6, 3.7, 4, 5.1).

The filters that prune "the R first examples by a key" are expressed as *selections*: for
every group (a class and given side, a class, or all rows) the eligible pairs, their sort key,
and a quota. A selection is exact and deterministic: the quota smallest `(key, id)` pairs.
This module computes eligibility and keys for a batch and applies a cut; finding the cut is
the engine's job (NumPy in memory, or a histogram and a small window in Spark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labelqa.core.arrays import Floats, Indices, Ints, Mask, Values
from labelqa.core.batch import Batch
from labelqa.core.constants import DEFAULT_ALPHA, FLOATING_POINT_COMPARISON
from labelqa.core.scores import class_scores, exponential_moving_average

#: Selection kinds, their groups and their key ranges (for histogram bins).
NOISE_RATE = "noise_rate"  # prune_by_noise_rate: group 2k+s, key -(other - given side)
BY_CLASS = "by_class"  # prune_by_class: group 2k+s, key = probability of the given side
LOW_CLASS = "low_class"  # low_* per class: group k, key = binary self-confidence or margin
LOW_ROWS = "low_rows"  # low_* per example: group 0, key = EMA(0.8) self-confidence
KEY_RANGES = {NOISE_RATE: (-1.0, 1.0), BY_CLASS: (0.0, 1.0), LOW_CLASS: (0.0, 1.0),
              LOW_ROWS: (0.0, 1.0)}


def disagreements(batch: Batch) -> Mask:
    """(n, K): the model disagrees with the annotation by more than the near-tie slack.

    This is what survives cleanlab's near-tie removal, and equals `predicted_neq_given`.
    """
    eps = FLOATING_POINT_COMPARISON
    member_wrong = batch.given & (batch.probs + eps <= batch.complement)
    missing = ~batch.given & (batch.complement + eps < batch.probs)
    disagree: Mask = member_wrong | missing
    return disagree


def confident_learning_flags(batch: Batch, counted: Mask, guess: Mask) -> Mask:
    """(n, K): confidently on the other side than annotated (the confident joint's
    off-diagonal, from `confident_guess`), minus near-ties."""
    flags: Mask = counted & (guess != batch.given) & disagreements(batch)
    return flags


def num_groups(kind: str, num_classes: int) -> int:
    return {NOISE_RATE: 2 * num_classes, BY_CLASS: 2 * num_classes, LOW_CLASS: num_classes,
            LOW_ROWS: 1}[kind]


@dataclass(frozen=True)
class Pairs:
    """Eligible pairs of one selection in a batch: row index, class (-1 for rows), group, key."""

    rows: Indices
    classes: Indices
    groups: Indices
    keys: Floats


def selection_pairs(batch: Batch, kind: str, enabled: Mask) -> Pairs:
    """The pairs of `batch` that selection `kind` ranks, with their float64 keys.

    `enabled` is per group: a disabled group (a side too small to prune, a class that cannot
    be judged) has no eligible pairs.
    """
    if kind == LOW_ROWS:
        scores = class_scores(batch, "self_confidence", False, None)
        keys = exponential_moving_average(scores, DEFAULT_ALPHA)
        rows = np.arange(batch.num_rows) if enabled[0] else np.arange(0)
        return Pairs(rows, np.full(len(rows), -1), np.zeros(len(rows), dtype=np.int64),
                     keys[rows] + 0.0)
    if kind not in (NOISE_RATE, BY_CLASS):
        raise ValueError(f"unknown selection kind {kind!r}")
    sides = enabled.reshape(-1, 2)  # group 2k + s: class k, given side s
    eligible = disagreements(batch) & np.where(batch.given, sides[:, 1], sides[:, 0])
    rows, classes = np.nonzero(eligible)
    # keys at the eligible pairs only, in the predictions' dtype as cleanlab computes them
    given = batch.given[rows, classes]
    probs, complement = batch.probs[rows, classes], batch.complement[rows, classes]
    given_side = np.where(given, probs, complement)
    if kind == NOISE_RATE:
        # cleanlab sorts by -(margin of the other side over the given side)
        keys = -(np.where(given, complement, probs) - given_side)
    else:
        keys = given_side
    # + 0.0 turns -0.0 into 0.0 so that NumPy and Spark order the keys alike
    return Pairs(rows, classes, 2 * classes.astype(np.int64) + given,
                 keys.astype(np.float64) + 0.0)


def low_class_pairs(batch: Batch, method: str, enabled: Mask) -> Pairs:
    """The pairs of the enabled classes that can be among the lowest by cleanlab's binary
    score for low_* filters, keyed by that score.

    A class's quota is its number of confident-learning flags, and each of those pairs has the
    model disagree with the annotation, so its key (the given side's probability, or the
    margin over the other side) is below 0.5. At least `quota` pairs have keys below 0.5;
    pairs above it can never be selected, so only keys <= 0.5 are eligible (measured at
    1M x 40: 2.4 M eligible pairs instead of 40 M).
    """
    keys = class_scores(batch, method, False, None)
    eligible = (keys <= 0.5) & enabled[None, :]
    rows, classes = np.nonzero(eligible)
    return Pairs(rows, classes, classes.astype(np.int64), keys[rows, classes] + 0.0)


@dataclass(frozen=True)
class Selection:
    """One exact selection: per group, flag the `quotas[g]` smallest `(key, id)` pairs.

    A filter has at most one selection of each kind, so the kind names it: the key of its
    cut and of its histogram.
    """

    kind: str
    enabled: Mask
    quotas: Ints
    method: str = "self_confidence"  # the binary score a LOW_CLASS selection ranks by

    @property
    def name(self) -> str:
        return self.kind

    def pairs(self, batch: Batch) -> Pairs:
        if self.kind == LOW_CLASS:
            return low_class_pairs(batch, self.method, self.enabled)
        return selection_pairs(batch, self.kind, self.enabled)


@dataclass(frozen=True)
class Cut:
    """Per group, the last selected `(key, id)`; `+inf` selects every eligible pair, `-inf`
    none."""

    keys: Floats
    ids: Values

    @staticmethod
    def everything(num: int, id_dtype: np.dtype[Any]) -> Cut:
        ids = (np.full(num, "", dtype=object) if id_dtype == np.dtype(object)
               else np.zeros(num, dtype=id_dtype))
        return Cut(np.full(num, np.inf), ids)

    def selects(self, pairs: Pairs, ids: Values) -> Mask:
        cut_keys = self.keys[pairs.groups]
        below = pairs.keys < cut_keys
        at = pairs.keys == cut_keys
        if at.any():
            pair_ids = ids[pairs.rows[at]]
            below[at] = pair_ids <= self.ids[pairs.groups[at]]
        return below


def exact_cut(pairs: Pairs, ids: Values, quotas: Ints,
              rows_in_id_order: bool = False) -> Cut:
    """In-memory reference of the selection: the quota-th smallest `(key, id)` per group, for
    every group at once (one sort of the eligible pairs by group, key and id).

    `rows_in_id_order`: the pairs come in ascending id order already (rows in order, ids
    ascending with the row), so a stable sort by group and key alone breaks ties by id.
    """
    num_groups_ = len(quotas)
    quotas = np.asarray(quotas, dtype=np.int64)
    cut = Cut.everything(num_groups_, ids.dtype)
    keys, cut_ids = cut.keys.copy(), cut.ids.copy()
    counts = np.bincount(pairs.groups, minlength=num_groups_)
    keys[quotas <= 0] = -np.inf
    partial = np.flatnonzero((quotas > 0) & (quotas < counts))
    if len(partial):
        order = (np.lexsort((pairs.keys, pairs.groups)) if rows_in_id_order
                 else np.lexsort((ids[pairs.rows], pairs.keys, pairs.groups)))
        starts = np.cumsum(counts) - counts
        last = order[starts[partial] + quotas[partial] - 1]
        keys[partial] = pairs.keys[last]
        cut_ids[partial] = ids[pairs.rows[last]]
    return Cut(keys, cut_ids)

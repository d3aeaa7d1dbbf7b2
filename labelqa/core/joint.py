"""The per-class 2x2 confident joint (spec 3.2), its calibration (3.3) and prune counts (3.4, 3.5).

Index convention of every (K, 2, 2) array here: `[k, given, estimated]`, 1 = member of k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from labelqa.core.arrays import Floats, Ints, Mask
from labelqa.core.batch import Batch
from labelqa.core.constants import TINY


def confident_guess(batch: Batch, cut_not_given: Floats, cut_given: Floats
                    ) -> tuple[Mask, Mask]:
    """(counted, guess) per (row, class): is the row confidently on a side, and which side.

    A row confident on both sides takes the argmax of `[1 - p, p]` (a tie goes to side 0).
    """
    confident_not = batch.complement >= cut_not_given
    confident_member = batch.probs >= cut_given
    argmax_member = batch.probs > batch.complement
    guess = np.where(confident_not & confident_member, argmax_member, confident_member)
    return confident_not | confident_member, guess


def raw_joint_counts(given: Mask, counted: Mask, guess: Mask) -> Ints:
    """Unclipped, uncalibrated confident-joint counts (K, 2, 2) of one batch of rows."""
    joint = np.empty((given.shape[1], 2, 2), dtype=np.int64)
    for side_given in (0, 1):
        for side_guess in (0, 1):
            cell = counted & (given == bool(side_given)) & (guess == bool(side_guess))
            joint[:, side_given, side_guess] = cell.sum(axis=0)
    return joint


def round_preserving_sum(values: ArrayLike) -> Floats:
    """Round half to even, then move units to the largest (smallest) residuals to keep the sum."""
    floats = np.asarray(values, dtype=float)
    ints: Floats = floats.round()
    target = np.sum(floats).round()
    current = np.sum(ints).round()
    while abs(current - target) > 1e-6:
        difference = np.round(target - current)
        step = -1 if difference < 0 else 1
        changes = min(int(abs(difference)), len(floats))
        order = np.argsort(floats - ints)[::-step][:changes]
        for index in order:
            ints[index] += step
        current = np.sum(ints).round()
    return ints


def round_rows_preserving_totals(matrix: ArrayLike) -> Ints:
    """Row-wise `round_preserving_sum`, cast to int64 (NaN becomes INT64_MIN, as in cleanlab)."""
    rounded = np.array([round_preserving_sum(row) for row in np.asarray(matrix, dtype=float)])
    with np.errstate(invalid="ignore"):
        return rounded.astype(np.int64)


def calibrate(raw_joint: Ints, num_not_given: Ints, num_given: Ints) -> Ints:
    """Calibrated (K, 2, 2) joint: diagonal forced to >= 1, rows scaled to the class counts."""
    joint = np.array(raw_joint, dtype=np.int64)
    for side in (0, 1):
        joint[:, side, side] = np.maximum(joint[:, side, side], 1)
    calibrated = np.empty_like(joint)
    for k in range(joint.shape[0]):
        counts = np.array([num_not_given[k], num_given[k]], dtype=np.int64)
        cell = joint[k]
        scaled = (cell.T / np.clip(cell.sum(axis=1), TINY, None) * counts).T
        scaled = scaled / np.clip(np.sum(scaled), TINY, None) * counts.sum()
        calibrated[k] = round_rows_preserving_totals(scaled)
    return calibrated


def keep_at_least_per_class(prune_matrix: Floats, minimum: int, frac_noise: float) -> Ints:
    """Prune-count matrix (rows = estimated, columns = given) with at least `minimum` kept
    per given side, off-diagonal counts scaled by `frac_noise` and truncated."""
    diagonal = np.diagonal(prune_matrix)
    new_diagonal = np.maximum(diagonal, minimum)
    added = new_diagonal - diagonal
    nonzero_off = np.maximum(np.count_nonzero(prune_matrix, axis=0) - 1.0, 1.0)
    reduced = prune_matrix - added / nonzero_off
    reduced[reduced < 0] = 0
    np.fill_diagonal(reduced, new_diagonal)
    scaled = reduced * frac_noise
    np.fill_diagonal(scaled, reduced.diagonal())
    # the diagonal keeps what frac_noise takes off the column's off-diagonal counts
    np.fill_diagonal(scaled, reduced.diagonal() + np.sum(reduced - scaled, axis=0))
    truncated = scaled.astype(int)
    return round_rows_preserving_totals(truncated)


def apply_num_to_remove(prune_matrix: Ints, counts: Ints, num_to_remove: int) -> Ints:
    """cleanlab's `num_to_remove_per_class` step on a binary problem given `[n_k, 0]`.

    Kept as cleanlab evaluates it, including its broadcast (column c divided by the sum of
    row c) and its NaN results, which become INT64_MIN and prune nothing.
    """
    remove = np.array([num_to_remove, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        per_side = prune_matrix / np.sum(prune_matrix, axis=1)
        noise = per_side.sum(axis=1) - per_side.diagonal()
        scaled = (per_side.T * remove / noise).T
    np.fill_diagonal(scaled, counts - remove)
    return round_rows_preserving_totals(scaled)


@dataclass(frozen=True)
class PruneQuotas:
    """How many examples each filter of the prune family may flag, per class and given side.

    `noise_rate[k, s]`: prune_by_noise_rate's count for the examples given side s of class k;
    `by_class[k, s]`: prune_by_class's count. A non-positive quota flags nothing.
    `side_enabled[k, s]`: the side has enough examples to be pruned at all.
    """

    noise_rate: Ints
    by_class: Ints
    side_enabled: Mask


def prune_quotas(calibrated: Ints, num_not_given: Ints, num_given: Ints,
                 min_examples_per_class: int, frac_noise: float,
                 num_to_remove_per_class: tuple[int, ...] | None) -> PruneQuotas:
    num_classes = calibrated.shape[0]
    noise_rate = np.zeros((num_classes, 2), dtype=np.int64)
    by_class = np.zeros((num_classes, 2), dtype=np.int64)
    for k in range(num_classes):
        counts = np.array([num_not_given[k], num_given[k]], dtype=np.int64)
        matrix = keep_at_least_per_class(calibrated[k].T.astype(float), min_examples_per_class,
                                         frac_noise)
        if num_to_remove_per_class is not None:
            matrix = apply_num_to_remove(matrix, counts, num_to_remove_per_class[k])
        noise_rate[k] = [matrix[1, 0], matrix[0, 1]]
        by_class[k] = counts - np.diagonal(matrix)
    return PruneQuotas(noise_rate=noise_rate, by_class=by_class,
                       side_enabled=prunable_sides(num_not_given, num_given,
                                                   min_examples_per_class))


def prunable_sides(num_not_given: Ints, num_given: Ints, min_examples_per_class: int) -> Mask:
    """(K, 2): may the prune filters flag examples given side s of class k at all.

    cleanlab prunes a side only with more than `min_examples_per_class` examples, and writes a
    side's mask back only when the side has more than one example.
    """
    sizes = np.stack([num_not_given, num_given], axis=1)
    return (sizes > min_examples_per_class) & (sizes > 1)

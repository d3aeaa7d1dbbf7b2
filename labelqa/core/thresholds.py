"""Per-class confident thresholds (spec 3.1), summed exactly so that partitioning cannot matter.

cleanlab takes `np.mean` over one array. A distributed job adds partial sums in an order that
depends on the partitioning, and float addition is not associative. Here every value is split
into three 30-bit integer limbs (an error-free split: rounding to a multiple of 2**-30 and the
remainder are exact), the limbs are summed exactly, and the mean is rounded once from the
exact rational sum. The result is the same for any split of the rows and within an ulp or two
of NumPy's pairwise mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from labelqa.core.arrays import Floats, Ints, Mask, Probabilities
from labelqa.core.constants import ABSENT_SIDE_THRESHOLD, FLOATING_POINT_COMPARISON, THRESHOLD_FLOOR

LIMB_BITS = 30
NUM_LIMBS = 3
_LIMB_SCALE = float(2**LIMB_BITS)


#: rows summed at once: every partial sum of one limb (multiples of 2**-30 below 2 in
#: magnitude each) stays below 2**22, so float64 adds them exactly
_CHUNK_ROWS = 1 << 21
#: cells (rows x K) split at once: the limb arithmetic's temporaries stay in the CPU cache
#: (measured on a 20,000 x 40 batch: 1.54 s per million rows in one piece, 0.44 s in
#: pieces of 2,048-4,096 rows; exact integer totals, so the pieces cannot change them)
_CACHE_CELLS = 1 << 17
#: adding and subtracting 1.5 * 2**22 rounds a float64 of magnitude below 2**21 to the nearest
#: multiple of 2**-30, exactly (its ulp there is 2**-30): the error-free split of each limb
_SPLIT = 1.5 * 2.0**22


def side_limb_sums(values: Probabilities, side: Mask) -> tuple[Ints, Ints]:
    """Exact per-column sums of `values` over the rows where `side` is true and where it is
    false, as two (NUM_LIMBS, K) int64 limb totals (limb i counts units of 2**-30(i+1)).

    Each value is split without error into NUM_LIMBS signed 30-bit limbs (round to nearest
    multiple of 2**-30, keep the exact remainder, scale, repeat); value bits below 2**-91
    are dropped (far below float32 resolution and below the resolution of any float64
    probability larger than 2**-37). Both sides come from one matrix, and each limb is
    summed as float64 (exact, see _CHUNK_ROWS), a cache-sized piece of rows at a time.
    Measured at 1M x 40: 3.1 s with floor and int64 sums per side, 0.6 s this way.
    """
    on_side = np.zeros((NUM_LIMBS,) + values.shape[1:], dtype=np.int64)
    off_side = np.zeros_like(on_side)
    width = int(np.prod(values.shape[1:], dtype=np.int64)) or 1
    rows = max(1, min(_CHUNK_ROWS, _CACHE_CELLS // width))
    for start in range(0, max(len(values), 1), rows):
        remainder = values[start:start + rows].astype(np.float64)
        chosen = side[start:start + rows].astype(np.float64)
        for position in range(NUM_LIMBS):
            limb = remainder + _SPLIT
            limb -= _SPLIT
            remainder -= limb
            remainder *= _LIMB_SCALE
            total = limb.sum(axis=0)
            given = np.einsum("ij,ij->j", limb, chosen)
            on_side[position] += (given * _LIMB_SCALE).astype(np.int64)
            off_side[position] += ((total - given) * _LIMB_SCALE).astype(np.int64)
    return on_side, off_side


def limb_sums(values: Probabilities, include: Mask) -> Ints:
    """Exact per-column sums of `values[include]` as (NUM_LIMBS, K) int64 limb totals."""
    return side_limb_sums(values, include)[0]


def exact_total(limbs: ArrayLike) -> list[Fraction]:
    """The exact sums, one per column, from limb totals (NUM_LIMBS, K)."""
    totals = []
    for column in np.asarray(limbs, dtype=object).T:
        total = Fraction(0)
        for position, value in enumerate(column):
            total += Fraction(int(value), 2 ** (LIMB_BITS * (position + 1)))
        totals.append(total)
    return totals


@dataclass(frozen=True)
class ConfidentThresholds:
    """Thresholds `t0` (not annotated side) and `t1` (annotated side) per class.

    Values are held as float64. `single_precision[k]` says that cleanlab holds class k's pair
    as float32 (float32 predictions with both sides present); an absent side's int `2`
    promotes the pair to float64.
    """

    not_given: Floats
    given: Floats
    single_precision: Mask

    def cut_points(self) -> tuple[Floats, Floats]:
        """`t - 1e-6` evaluated in each class's dtype, returned as float64 (exact)."""
        cuts = []
        for values in (self.not_given, self.given):
            double = values - FLOATING_POINT_COMPARISON
            single = (values.astype(np.float32)
                      - np.float32(FLOATING_POINT_COMPARISON)).astype(np.float64)
            cuts.append(np.where(self.single_precision, single, double))
        return cuts[0], cuts[1]

    def as_pairs(self) -> Floats:
        """(K, 2) array `[t0, t1]` as cleanlab's get_confident_thresholds returns it."""
        return np.stack([self.not_given, self.given], axis=1)


def confident_thresholds(num_given: Ints, num_not_given: Ints, given_limbs: Ints,
                         not_given_limbs: Ints,
                         single_precision_input: bool) -> ConfidentThresholds:
    """Thresholds from class counts and exact sums of `p` (annotated) and `1 - p` (not)."""
    num_classes = len(num_given)
    sums_given = exact_total(given_limbs)
    sums_not_given = exact_total(not_given_limbs)
    t_given = np.empty(num_classes)
    t_not = np.empty(num_classes)
    both_sides = (np.asarray(num_given) > 0) & (np.asarray(num_not_given) > 0)
    single = both_sides & single_precision_input
    for k in range(num_classes):
        for out, count, total in ((t_given, num_given[k], sums_given[k]),
                                  (t_not, num_not_given[k], sums_not_given[k])):
            if count == 0:
                out[k] = ABSENT_SIDE_THRESHOLD
                continue
            mean = float(total / int(count))
            if single_precision_input:  # np.mean of float32 values is float32
                mean = float(np.float32(mean))
            floor = float(np.float32(THRESHOLD_FLOOR)) if single[k] else THRESHOLD_FLOOR
            out[k] = max(mean, floor)
    return ConfidentThresholds(not_given=t_not, given=t_given, single_precision=single)

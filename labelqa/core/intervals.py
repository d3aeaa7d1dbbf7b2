"""The Wilson score interval of a binomial proportion, vectorised (reviews' precision and the
annotators' rates share it)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from labelqa.core.arrays import Floats

#: the standard normal's 97.5 % quantile: a two-sided 95 % interval
Z_95 = 1.959963984540054


def wilson_interval(successes: ArrayLike, trials: ArrayLike, z: float = Z_95
                    ) -> tuple[Floats, Floats]:
    """(low, high) of the Wilson score interval of `successes` out of `trials`, element-wise;
    NaN where there are no trials. Unlike the normal approximation it stays inside [0, 1] and
    is informative at 0 and at `trials` successes."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("successes must be between 0 and trials")
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
        low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high

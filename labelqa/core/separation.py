"""How well the model's probabilities separate given from absent tags: a ROC AUC per class.

A weak model (AUC near 0.5) makes Confident Learning flag a large share of the examples, and
most of those flags are the model's errors rather than annotation errors; the audit says so.

The AUC is P(p of an annotated example > p of an example without the tag), ties counting
one half (what `sklearn.metrics.roc_auc_score` computes). It comes from a histogram of each
class's probabilities in `bins` equal-width bins over [0, 1], given and absent apart, summed
exactly over all rows in the audit's joint-and-histograms pass (no extra pass, no rows on the
driver). Pairs in different bins are ordered exactly; pairs in one bin are counted as one half,
so the error is at most half the share of pairs that share a bin: `error` reports that bound
per class (about 0.5 / bins for spread-out probabilities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labelqa.core.arrays import Floats, Ints, Mask
from labelqa.core.batch import Batch

#: below this AUC a class's probabilities separate its given from its absent tags weakly
WEAK_SEPARATION_AUC = 0.75
#: the histograms' cells over all classes (bounded so that the per-task sums stay small)
SEPARATION_CELLS = 1 << 17
HISTOGRAM_NAME = "separation"
#: what a weak model means and what to do about it (the command line and the report say it)
WEAK_SEPARATION_ADVICE = (
    "with a weak model most flags are the model's errors, not annotation errors. Use better "
    "out-of-sample predictions (a stronger model, cross-validated with more folds), or "
    "issues.filter_by=confident_learning, which flags less")


def is_weak(auc: float | None) -> bool:
    """The rule for a class's AUC and for a run's (the mean over its classes): weak below
    WEAK_SEPARATION_AUC; unknown (None, NaN) is not weak."""
    return auc is not None and not math.isnan(auc) and auc < WEAK_SEPARATION_AUC


def separation_bins(num_classes: int) -> int:
    """Bins per class and side: a power of two in [16, 1024] within SEPARATION_CELLS."""
    per_class = max(SEPARATION_CELLS // (2 * num_classes), 1)
    return int(min(1024, max(16, 1 << int(np.log2(per_class)))))


def separation_partials(batch: Batch, bins: int) -> dict[str, Ints]:
    """(K, 2, bins) counts, flattened: class, given (1) or absent (0), probability bin."""
    num_classes = batch.num_classes
    # probabilities within cleanlab's 1e-6 slack outside [0, 1] go to the end bins
    prob_bin = np.clip((batch.probs * bins).astype(np.int64), 0, bins - 1)
    cells = ((np.arange(num_classes)[None, :] * 2 + batch.given) * bins + prob_bin).reshape(-1)
    return {HISTOGRAM_NAME: np.bincount(cells, minlength=num_classes * 2 * bins)
            .astype(np.int64)}


def separation_shapes(num_classes: int) -> dict[str, tuple[int, int, int]]:
    return {HISTOGRAM_NAME: (num_classes, 2, separation_bins(num_classes))}


@dataclass(frozen=True)
class Separation:
    """Per-class AUC (NaN for a class given on every example or on none) and its bound."""

    auc: Floats
    error: Floats

    @classmethod
    def of(cls, histogram: Ints) -> Separation:
        absent = histogram[:, 0, :].astype(np.float64)
        given = histogram[:, 1, :].astype(np.float64)
        absent_below = np.cumsum(absent, axis=1) - absent
        pairs = absent.sum(axis=1) * given.sum(axis=1)
        same_bin = (given * absent).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = ((given * absent_below).sum(axis=1) + 0.5 * same_bin) / pairs
            error = 0.5 * same_bin / pairs
        return cls(auc, error)

    @property
    def measured(self) -> Mask:
        return ~np.isnan(self.auc)

    @property
    def mean_auc(self) -> float | None:
        """The mean AUC over the classes with both sides (None when there is none)."""
        return float(self.auc[self.measured].mean()) if self.measured.any() else None

    @property
    def weak(self) -> Mask:
        return np.array([is_weak(float(auc)) for auc in self.auc], dtype=bool)

    def warning(self, class_names: tuple[str, ...], flagged_fraction: float) -> str | None:
        """The command line's warning when the model is weak, else None."""
        if not is_weak(self.mean_auc):
            return None
        worst = [class_names[k] for k in np.argsort(np.nan_to_num(self.auc, nan=1.0),
                                                    kind="stable")[:3] if self.weak[k]]
        return (f"the predictions separate given from absent tags weakly: mean AUC "
                f"{self.mean_auc:.3f} < {WEAK_SEPARATION_AUC} ({int(self.weak.sum())} of "
                f"{int(self.measured.sum())} classes below, worst: "
                f"{', '.join(repr(n) for n in worst)}); {flagged_fraction:.0%} of the examples "
                f"are flagged, and {WEAK_SEPARATION_ADVICE} (see classes.separation_auc)")

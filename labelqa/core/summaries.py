"""Dataset-level figures from per-class counts (spec section 8): the class ranking and the
health score, shared by the Spark `classes`/`summary` tables and the notebook API.

Counts are exact: cleanlab's `int(c / N * N)` can be one less than `c`; labelqa reports `c`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelqa.core.arrays import Floats, Ints, Mask


@dataclass(frozen=True)
class ClassQuality:
    """Per class: flagged examples annotated with it (`label_issues`) and flagged examples
    missing it (`inverse_label_issues`), each also as a fraction of all N examples."""

    label_issues: Ints
    inverse_label_issues: Ints
    num_rows: int

    @property
    def label_noise(self) -> Floats:
        return self.label_issues / self.num_rows

    @property
    def inverse_label_noise(self) -> Floats:
        return self.inverse_label_issues / self.num_rows

    @property
    def label_quality_score(self) -> Floats:
        return 1.0 - self.label_noise


def class_quality(class_flags: Mask, given: Mask) -> ClassQuality:
    """From the (N, K) per-class flags and annotations of all rows."""
    return ClassQuality((class_flags & given).sum(axis=0).astype(np.int64),
                        (class_flags & ~given).sum(axis=0).astype(np.int64), len(given))


def health_score(num_label_issues: int, num_rows: int) -> float:
    """cleanlab's overall_multilabel_health_score: the fraction of examples not flagged."""
    return 1.0 - num_label_issues / num_rows

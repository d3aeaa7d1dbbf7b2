"""A batch of audited rows as NumPy matrices: ids, the multi-hot labels and the probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from labelqa.core.arrays import Ints, Mask, Probabilities, Values


def multi_hot(label_values: Ints, row_of_value: Ints, num_rows: int, num_classes: int
              ) -> Mask:
    """The (n, K) bool matrix of the annotated classes.

    `label_values[j]` is a class index annotated on row `row_of_value[j]`. A class repeated in
    one row collapses to one annotation, as cleanlab's MultiLabelBinarizer does.
    """
    given = np.zeros((num_rows, num_classes), dtype=bool)
    values = np.asarray(label_values, dtype=np.int64)
    rows = np.asarray(row_of_value, dtype=np.int64)
    inside = (values >= 0) & (values < num_classes)
    given[rows[inside], values[inside]] = True
    return given


@dataclass(frozen=True, eq=False)
class Batch:
    """Rows of the joined input.

    `probs` keeps the dtype of the predictions (float32 or float64): cleanlab computes `1 - p`,
    the thresholds' comparisons and the adjusted probabilities in that dtype.
    """

    ids: Values
    given: Mask
    probs: Probabilities

    def __post_init__(self) -> None:
        if self.given.shape != self.probs.shape:
            raise ValueError(f"labels {self.given.shape} and probabilities "
                             f"{self.probs.shape} differ")
        if self.probs.dtype not in (np.float32, np.float64):
            raise ValueError(f"probabilities must be float32 or float64, not {self.probs.dtype}")

    @property
    def num_rows(self) -> int:
        return int(self.probs.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1])

    @cached_property
    def complement(self) -> Probabilities:
        """`1 - p` in the dtype of the predictions (column 0 of cleanlab's binary problem)."""
        complement: Probabilities = self.probs.dtype.type(1) - self.probs
        return complement

    @cached_property
    def given_side_prob(self) -> Probabilities:
        """Probability of the given side: `p` where annotated, `1 - p` where not."""
        return np.where(self.given, self.probs, self.complement)

    @cached_property
    def other_side_prob(self) -> Probabilities:
        return np.where(self.given, self.complement, self.probs)

"""Exact `issue_rank` (1 = most severe: by score, then id) without moving JVM rows.

The scoring pass counts the flagged examples per score bin (RANK_BINS equal-width bins,
summed exactly). The driver groups consecutive bins into ranges of about range_rows(K) flagged
examples and knows how many flagged examples precede each range. The flagged rows then
travel as compact blocks, one per (by-range task, range), to the task of their range, which
sorts them by (score, id): the rank is the range's offset plus the position. Unflagged rows
never move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANK_BINS = 4096
RANGE_ROWS = 200_000
#: a range's rows are finished (tags, explanation) and written at once by one task: about
#: 2 x 0.16 x K tags per row in the benchmark's data, so 200,000 rows at K = 4000 were
#: ≈ 3 GB in one Python worker; RANGE_CELLS / K rows bounds that (K <= 40 is unchanged)
RANGE_CELLS = RANGE_ROWS * 40
MIN_RANGE_ROWS = 1_000


def range_rows(num_classes: int) -> int:
    """Flagged rows per rank range at K classes: RANGE_CELLS / K, 1,000 to RANGE_ROWS."""
    return int(min(RANGE_ROWS, max(MIN_RANGE_ROWS, RANGE_CELLS // max(num_classes, 1))))


def rank_bins(scores: np.ndarray) -> np.ndarray:
    """Monotone bin of each score (scores outside [0, 1] go to the first or last bin)."""
    return np.clip(np.floor(np.asarray(scores) * RANK_BINS), 0, RANK_BINS - 1).astype(np.int64)


@dataclass(frozen=True)
class RankRanges:
    """Consecutive score bins grouped into ranges (K-sized: RANK_BINS entries)."""

    range_of_bin: np.ndarray
    offsets: np.ndarray  # flagged examples before each range

    @property
    def count(self) -> int:
        return len(self.offsets)

    @staticmethod
    def of(counts: np.ndarray, rows_per_range: int = RANGE_ROWS) -> RankRanges:
        before = np.concatenate([[0], np.cumsum(counts)[:-1]])  # flagged rows in lower bins
        # a range per block of rows_per_range, numbered 0, 1, 2, ... over the ranges present
        _, range_of_bin = np.unique(before // rows_per_range, return_inverse=True)
        starts = np.flatnonzero(np.diff(range_of_bin, prepend=-1) > 0)
        return RankRanges(range_of_bin, before[starts])

    def ranges(self, scores: np.ndarray) -> np.ndarray:
        return self.range_of_bin[rank_bins(scores)]


def ranks_within(scores: np.ndarray, ids: np.ndarray, offset: int) -> np.ndarray:
    """1-based ranks by (score, id) of one range's rows, offset by the rows before it."""
    by_id = np.argsort(ids, kind="stable")
    order = by_id[np.argsort(scores[by_id], kind="stable")]
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = offset + 1 + np.arange(len(scores))
    return ranks

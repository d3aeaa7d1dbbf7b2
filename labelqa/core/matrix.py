"""The whole audit over in-memory matrices, in chunks of rows: the engine of the notebook API
(`labelqa.multilabel_classification`) and the one-process reference the tests compare with.

It runs the steps of `labelqa.core.plan` that the Spark engine runs on its batches, over
slices of the matrices (views, never copies), and finds each selection's cut with one sort
of the eligible pairs. Peak memory beyond the inputs and the requested outputs is a few
chunk-sized temporaries plus the eligible pairs of the prune filters (the pairs where the
model disagrees with the annotation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelqa.core import flags as fl
from labelqa.core.arrays import Floats, Indices, Ints, Mask, Probabilities, Values
from labelqa.core.batch import Batch
from labelqa.core.params import IssuesParams, ScoringParams
from labelqa.core.plan import (
    AuditPlan,
    audit_batch,
    joint_partials,
    plan_from,
    threshold_partials,
    thresholds_from,
)
from labelqa.core.thresholds import ConfidentThresholds

#: (row, class) cells per chunk: a chunk's float64 temporaries are 2 MiB and stay in the CPU
#: caches. Measured at 1M x 40 float32, the whole default audit: 2**16 cells 2.35 s, 2**18
#: 2.45 s, 2**20 2.98 s, 2**22 3.58 s, the whole matrix at once 8.1 s.
CHUNK_CELLS = 1 << 18


def chunk_rows_for(num_classes: int) -> int:
    """Rows per chunk: CHUNK_CELLS cells whatever K is."""
    return max(256, CHUNK_CELLS // max(num_classes, 1))


@dataclass(frozen=True)
class MatrixAudit:
    """What an audit of N rows found; the (N, K) outputs only where they were asked for."""

    plan: AuditPlan
    is_label_issue: Mask  # (N,)
    label_quality_score: Floats  # (N,)
    class_flags: Mask | None  # (N, K)
    class_scores: Floats | None  # (N, K)


def row_slices(num_rows: int, chunk_rows: int) -> Iterator[slice]:
    for start in range(0, num_rows, chunk_rows):
        yield slice(start, min(start + chunk_rows, num_rows))


class MatrixRows:
    """The rows of an audit as chunk-sized `Batch` views, made afresh on every pass so that
    the per-batch caches (`1 - p`, the given side's probability) never outlive a chunk."""

    def __init__(self, ids: Values, given: Mask, probs: Probabilities,
                 chunk_rows: int | None = None) -> None:
        self.ids, self.given, self.probs = ids, given, probs
        self.chunk_rows = chunk_rows or chunk_rows_for(probs.shape[1])
        Batch(ids[:0], given[:0], probs[:0])  # the shape and dtype checks, once

    @property
    def num_rows(self) -> int:
        return int(self.probs.shape[0])

    def batches(self) -> Iterator[tuple[slice, Batch]]:
        for rows in row_slices(self.num_rows, self.chunk_rows):
            yield rows, Batch(self.ids[rows], self.given[rows], self.probs[rows])


def _summed(parts: Iterable[Mapping[str, Ints]]) -> dict[str, Ints]:
    totals: dict[str, Ints] = {}
    for part in parts:
        for name, value in part.items():
            totals[name] = totals[name] + value if name in totals else value.copy()
    return totals


def matrix_thresholds(rows: MatrixRows) -> tuple[ConfidentThresholds, Ints]:
    """The confident thresholds and the number of examples annotated with each class."""
    partials = _summed(threshold_partials(batch) for _, batch in rows.batches())
    single = rows.probs.dtype == np.float32
    return thresholds_from(partials, rows.num_rows, single), partials["num_given"]


def _cuts(rows: MatrixRows, plan: AuditPlan, rows_in_id_order: bool) -> dict[str, fl.Cut]:
    """Each selection's cut, from the eligible pairs of all chunks in row order, held as
    compact columns (int32 rows and groups where they fit, float64 keys: 16 bytes a pair)."""
    row_type: type[np.integer[Any]] = np.int32 if rows.num_rows < 2**31 else np.int64
    collected: dict[str, tuple[list[Indices], list[Indices], list[Floats]]] = {
        s.name: ([], [], []) for s in plan.selections}
    for span, batch in rows.batches():
        for selection in plan.selections:
            pairs = selection.pairs(batch)
            row_parts, group_parts, key_parts = collected[selection.name]
            row_parts.append((pairs.rows + span.start).astype(row_type))
            group_parts.append(pairs.groups.astype(np.int32))
            key_parts.append(pairs.keys)
    cuts = {}
    for selection in plan.selections:
        row_parts, group_parts, key_parts = collected.pop(selection.name)
        pair_rows = np.concatenate(row_parts) if row_parts else np.zeros(0, dtype=row_type)
        row_parts.clear()
        groups = np.concatenate(group_parts) if group_parts else np.zeros(0, dtype=np.int32)
        group_parts.clear()
        keys = np.concatenate(key_parts) if key_parts else np.zeros(0)
        key_parts.clear()
        pairs = fl.Pairs(pair_rows, np.zeros(0, dtype=np.int32), groups, keys)
        cuts[selection.name] = fl.exact_cut(pairs, rows.ids, selection.quotas,
                                            rows_in_id_order)
        del pairs, pair_rows, groups, keys
    return cuts


def audit_matrix(ids: Values | None, given: Mask, probs: Probabilities,
                 scoring: ScoringParams = ScoringParams(),
                 issues: IssuesParams = IssuesParams(), *,
                 calibrated_joint: Ints | None = None,
                 keep_class_flags: bool = True, keep_class_scores: bool = False,
                 chunk_rows: int | None = None) -> MatrixAudit:
    """The whole audit of N rows: `given` (N, K) bool, `probs` (N, K) float32 or float64,
    `ids` (N,) the tie-break of every selection (ties go to the smaller id; None: the row
    index).

    Classes that cannot be judged under the filter are not judged (see `Filter.notes`); the
    caller decides whether that is an error.
    """
    rows_in_id_order = ids is None
    ids = np.arange(len(probs)) if ids is None else np.asarray(ids)
    rows = MatrixRows(ids, given, probs, chunk_rows)
    num_rows = rows.num_rows
    thresholds, num_given = matrix_thresholds(rows)
    judged = issues.filter.judged(num_given, num_rows)
    totals = _summed(joint_partials(batch, thresholds, judged) for _, batch in rows.batches())
    plan = plan_from(num_rows, thresholds, num_given, totals, scoring, issues,
                     calibrated_joint=calibrated_joint)
    cuts = _cuts(rows, plan, rows_in_id_order)
    num_classes = probs.shape[1]
    is_issue = np.zeros(num_rows, dtype=bool)
    quality = np.zeros(num_rows, dtype=np.float64)
    class_flags = np.zeros((num_rows, num_classes), dtype=bool) if keep_class_flags else None
    class_scores = (np.zeros((num_rows, num_classes), dtype=np.float64) if keep_class_scores
                    else None)
    for span, batch in rows.batches():
        result = audit_batch(batch, plan, cuts)
        is_issue[span] = result.is_label_issue
        quality[span] = result.label_quality_score
        if class_flags is not None:
            class_flags[span] = result.class_flags
        if class_scores is not None:
            class_scores[span] = result.class_scores
    return MatrixAudit(plan, is_issue, quality, class_flags, class_scores)

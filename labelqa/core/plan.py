"""From aggregated statistics to the decisions of one audit, and the per-batch work.

An engine (Spark, or NumPy in memory) runs three kinds of steps and this module supplies the
mathematics of each, so that both engines share one implementation:

1. `threshold_partials` per batch, summed -> `thresholds_from` (confident thresholds);
2. `joint_partials` per batch, summed -> `plan_from` (calibrated joints, quotas, selections);
3. the engine finds the cut of every selection, then `audit_batch` scores and flags rows.

What the configured filter judges, selects and flags, each step asks of its definition
(`issues.filter`, labelqa.core.filters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from labelqa.core import flags as fl
from labelqa.core.arrays import Floats, Ints, Mask
from labelqa.core.batch import Batch
from labelqa.core.filters import Filter, judged_mask
from labelqa.core.flags import Selection
from labelqa.core.joint import (
    PruneQuotas,
    calibrate,
    confident_guess,
    prunable_sides,
    prune_quotas,
    raw_joint_counts,
)
from labelqa.core.params import IssuesParams, ScoringParams
from labelqa.core.scores import aggregate, class_scores
from labelqa.core.thresholds import (
    ConfidentThresholds,
    confident_thresholds,
    side_limb_sums,
)

#: Summed per-batch statistics by name (counts and exact limb sums: all int64).
Partials = dict[str, Ints]

# ---- step 1: thresholds -------------------------------------------------------------------

def threshold_partials(batch: Batch) -> Partials:
    """Counts and exact limb sums of one batch; add them up over all batches."""
    given_limbs, not_given_limbs = side_limb_sums(batch.given_side_prob, batch.given)
    return {
        "num_given": batch.given.sum(axis=0).astype(np.int64),
        "given_limbs": given_limbs,
        "not_given_limbs": not_given_limbs,
    }


def thresholds_from(totals: Mapping[str, Ints], num_rows: int, single_precision: bool
                    ) -> ConfidentThresholds:
    num_given = totals["num_given"]
    return confident_thresholds(num_given, num_rows - num_given, totals["given_limbs"],
                                totals["not_given_limbs"], single_precision)


# ---- step 2: confident joint and the plan ------------------------------------------------

def joint_partials(batch: Batch, thresholds: ConfidentThresholds, judged: Mask) -> Partials:
    cut_not, cut_given = thresholds.cut_points()
    counted, guess = confident_guess(batch, cut_not, cut_given)
    cl = fl.confident_learning_flags(batch, counted, guess) & judged[None, :]
    return {
        "raw_joint": raw_joint_counts(batch.given, counted, guess),
        "cl_flags": cl.sum(axis=0).astype(np.int64),
        "cl_rows": np.array([cl.any(axis=1).sum()], dtype=np.int64),
    }


@dataclass(frozen=True)
class AuditPlan:
    num_rows: int
    num_classes: int
    scoring: ScoringParams
    issues: IssuesParams
    thresholds: ConfidentThresholds
    num_given: Ints
    calibrated_joint: Ints
    notes: tuple[str | None, ...]
    selections: tuple[Selection, ...]

    @property
    def filter(self) -> Filter:
        return self.issues.filter

    @property
    def judged(self) -> Mask:
        return judged_mask(self.notes)


def selection_layout(num_rows: int, num_given: Ints, issues: IssuesParams
                     ) -> tuple[Selection, ...]:
    """The selections of the configured filter, groups enabled, quotas not yet known: what a
    histogram of their keys needs (it does not depend on the thresholds)."""
    chosen = issues.filter
    sides = prunable_sides(num_rows - num_given, num_given, issues.min_examples_per_class)
    unknown = PruneQuotas(np.zeros_like(sides, dtype=np.int64),
                          np.zeros_like(sides, dtype=np.int64), sides)
    zeros = np.zeros(len(num_given), dtype=np.int64)
    return chosen.selections(chosen.judged(num_given, num_rows), unknown, zeros, zeros[:1])


def plan_from(num_rows: int, thresholds: ConfidentThresholds, num_given: Ints,
              totals: Mapping[str, Ints], scoring: ScoringParams,
              issues: IssuesParams, calibrated_joint: Ints | None = None
              ) -> AuditPlan:
    """The decisions of one audit. `calibrated_joint` (K, 2, 2), when given, replaces the
    joint estimated from the rows, as cleanlab's `confident_joint` argument does (the prune
    filters' quotas come from it; confident_learning and the low_* filters ignore it)."""
    chosen = issues.filter
    num_not = num_rows - num_given
    notes = chosen.notes(num_given, num_rows)
    calibrated = (calibrate(totals["raw_joint"], num_not, num_given) if calibrated_joint is None
                  else np.asarray(calibrated_joint, dtype=np.int64))
    quotas = prune_quotas(calibrated, num_not, num_given, issues.min_examples_per_class,
                          issues.frac_noise, issues.num_to_remove_per_class)
    selections = chosen.selections(judged_mask(notes), quotas,
                                   totals["cl_flags"].astype(np.int64),
                                   totals["cl_rows"].astype(np.int64))
    return AuditPlan(num_rows, len(num_given), scoring, issues, thresholds, num_given, calibrated,
                     notes, selections)


# ---- step 3: score and flag rows ------------------------------------------------------------

@dataclass(frozen=True)
class BatchResult:
    label_quality_score: Floats
    is_label_issue: Mask
    class_flags: Mask
    class_scores: Floats


def _selected(selection: Selection, cut: fl.Cut, batch: Batch) -> Mask:
    """(n, K) pair mask, or (n,) row mask for LOW_ROWS."""
    pairs = selection.pairs(batch)
    chosen = cut.selects(pairs, batch.ids)
    if selection.kind == fl.LOW_ROWS:
        rows = np.zeros(batch.num_rows, dtype=bool)
        rows[pairs.rows[chosen]] = True
        return rows
    mask = np.zeros(batch.given.shape, dtype=bool)
    mask[pairs.rows[chosen], pairs.classes[chosen]] = True
    return mask


def audit_batch(batch: Batch, plan: AuditPlan, cuts: Mapping[str, fl.Cut]) -> BatchResult:
    scoring, chosen = plan.scoring, plan.filter
    scores = class_scores(batch, scoring.method, scoring.adjust_pred_probs, plan.thresholds)
    quality = aggregate(scores, scoring.aggregator, scoring.alpha, scoring.temperature)
    selected = {s.name: _selected(s, cuts[s.name], batch) for s in plan.selections}
    class_flags = chosen.class_flags(batch, plan.thresholds, selected, plan.judged)
    return BatchResult(quality, chosen.is_issue(class_flags, selected), class_flags, scores)

"""From aggregated statistics to the decisions of one audit, and the per-batch work.

An engine (Spark, or NumPy in memory) runs three kinds of steps and this module supplies the
mathematics of each, so that both engines share one implementation:

1. `threshold_partials` per batch, summed -> `thresholds_from` (confident thresholds);
2. `joint_partials` per batch, summed -> `plan_from` (calibrated joints, quotas, selections);
3. the engine finds the cut of every selection, then `audit_batch` scores and flags rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelqa.config import LOW_FILTERS, IssuesConfig, ScoringConfig
from labelqa.core import flags as fl
from labelqa.core.batch import Batch
from labelqa.core.joint import (
    PruneQuotas,
    calibrate,
    confident_guess,
    prunable_sides,
    prune_quotas,
    raw_joint_counts,
)
from labelqa.core.scores import aggregate, class_scores
from labelqa.core.thresholds import (
    ConfidentThresholds,
    confident_thresholds,
    side_limb_sums,
)

# ---- step 1: thresholds -------------------------------------------------------------------

def threshold_partials(batch: Batch) -> dict[str, np.ndarray]:
    """Counts and exact limb sums of one batch; add them up over all batches."""
    given_limbs, not_given_limbs = side_limb_sums(batch.given_side_prob, batch.given)
    return {
        "num_given": batch.given.sum(axis=0).astype(np.int64),
        "given_limbs": given_limbs,
        "not_given_limbs": not_given_limbs,
    }


def thresholds_from(totals: dict[str, np.ndarray], num_rows: int, single_precision: bool
                    ) -> ConfidentThresholds:
    num_given = totals["num_given"]
    return confident_thresholds(num_given, num_rows - num_given, totals["given_limbs"],
                                totals["not_given_limbs"], single_precision)


# ---- classes that cannot be judged --------------------------------------------------------

def class_notes(num_given: np.ndarray, num_rows: int, filter_by: str) -> list[str | None]:
    """Why a class is not judged under `filter_by` (None: it is judged).

    cleanlab raises for such a class and aborts the whole call; labelqa judges the others.
    """
    notes: list[str | None] = []
    one_sided_fails = filter_by in LOW_FILTERS or filter_by == "predicted_neq_given"
    for count in num_given:
        if count == num_rows:
            notes.append("annotated on every example: with no example lacking it there is "
                         "nothing to compare against; not judged")
        elif count == 0 and one_sided_fails:
            notes.append(f"annotated on no example: filter_by={filter_by} cannot judge a class "
                         "with one side only; not judged")
        else:
            notes.append(None)
    return notes


# ---- step 2: confident joint and the plan ------------------------------------------------

def joint_partials(batch: Batch, thresholds: ConfidentThresholds, judged: np.ndarray
                   ) -> dict[str, np.ndarray]:
    cut_not, cut_given = thresholds.cut_points()
    counted, guess = confident_guess(batch, cut_not, cut_given)
    cl = fl.confident_learning_flags(batch, counted, guess) & judged[None, :]
    return {
        "raw_joint": raw_joint_counts(batch.given, counted, guess),
        "cl_flags": cl.sum(axis=0).astype(np.int64),
        "cl_rows": np.array([cl.any(axis=1).sum()], dtype=np.int64),
    }


@dataclass(frozen=True)
class Selection:
    """One exact selection: per group, flag the `quotas[g]` smallest `(key, id)` pairs."""

    name: str
    kind: str
    enabled: np.ndarray
    quotas: np.ndarray
    method: str = "self_confidence"

    def pairs(self, batch: Batch) -> fl.Pairs:
        if self.kind == fl.LOW_CLASS:
            return fl.low_class_pairs(batch, self.method, self.enabled)
        return fl.selection_pairs(batch, self.kind, self.enabled)


@dataclass(frozen=True)
class AuditPlan:
    num_rows: int
    num_classes: int
    scoring: ScoringConfig
    issues: IssuesConfig
    thresholds: ConfidentThresholds
    num_given: np.ndarray
    calibrated_joint: np.ndarray
    notes: tuple[str | None, ...]
    quotas: PruneQuotas
    selections: tuple[Selection, ...]

    @property
    def judged(self) -> np.ndarray:
        return np.array([note is None for note in self.notes])


def _selections(issues: IssuesConfig, judged: np.ndarray, side_enabled: np.ndarray,
                noise_rate: np.ndarray, by_class: np.ndarray, cl_flags: np.ndarray,
                cl_rows: np.ndarray) -> tuple[Selection, ...]:
    sides = (side_enabled & judged[:, None]).reshape(-1)
    selections: list[Selection] = []
    if issues.filter_by in ("prune_by_noise_rate", "both"):
        selections.append(Selection("noise_rate", fl.NOISE_RATE, sides, noise_rate.reshape(-1)))
    if issues.filter_by in ("prune_by_class", "both"):
        selections.append(Selection("by_class", fl.BY_CLASS, sides, by_class.reshape(-1)))
    if issues.filter_by in LOW_FILTERS:
        method = ("normalized_margin" if issues.filter_by == "low_normalized_margin"
                  else "self_confidence")
        selections.append(Selection("low_class", fl.LOW_CLASS, judged, cl_flags, method))
        selections.append(Selection("low_rows", fl.LOW_ROWS, np.array([True]), cl_rows))
    return tuple(selections)


def selection_layout(num_rows: int, num_given: np.ndarray, issues: IssuesConfig
                     ) -> tuple[Selection, ...]:
    """The selections of the configured filter, groups enabled, quotas not yet known: what a
    histogram of their keys needs (it does not depend on the thresholds)."""
    judged = np.array([note is None for note in class_notes(num_given, num_rows,
                                                            issues.filter_by)])
    sides = prunable_sides(num_rows - num_given, num_given, issues.min_examples_per_class)
    zeros = np.zeros(len(num_given), dtype=np.int64)
    return _selections(issues, judged, sides, np.zeros_like(sides, dtype=np.int64),
                       np.zeros_like(sides, dtype=np.int64), zeros, zeros[:1])


def plan_from(num_rows: int, thresholds: ConfidentThresholds, num_given: np.ndarray,
              totals: dict[str, np.ndarray], scoring: ScoringConfig, issues: IssuesConfig,
              calibrated_joint: np.ndarray | None = None) -> AuditPlan:
    """The decisions of one audit. `calibrated_joint` (K, 2, 2), when given, replaces the
    joint estimated from the rows, as cleanlab's `confident_joint` argument does (the prune
    filters' quotas come from it; confident_learning and the low_* filters ignore it)."""
    num_not = num_rows - num_given
    notes = tuple(class_notes(num_given, num_rows, issues.filter_by))
    judged = np.array([note is None for note in notes])
    calibrated = (calibrate(totals["raw_joint"], num_not, num_given) if calibrated_joint is None
                  else np.asarray(calibrated_joint, dtype=np.int64))
    quotas = prune_quotas(calibrated, num_not, num_given, issues.min_examples_per_class,
                          issues.frac_noise, issues.num_to_remove_per_class)
    selections = _selections(issues, judged, quotas.side_enabled, quotas.noise_rate,
                             quotas.by_class, totals["cl_flags"].astype(np.int64),
                             totals["cl_rows"].astype(np.int64))
    return AuditPlan(num_rows, len(num_given), scoring, issues, thresholds, num_given, calibrated,
                     notes, quotas, selections)


# ---- step 3: score and flag rows ------------------------------------------------------------

@dataclass(frozen=True)
class BatchResult:
    label_quality_score: np.ndarray
    is_label_issue: np.ndarray
    class_flags: np.ndarray
    class_scores: np.ndarray


def _selected(selection: Selection, cut: fl.Cut, batch: Batch) -> np.ndarray:
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


def audit_batch(batch: Batch, plan: AuditPlan, cuts: dict[str, fl.Cut]) -> BatchResult:
    scoring, filter_by = plan.scoring, plan.issues.filter_by
    scores = class_scores(batch, scoring.method, scoring.adjust_pred_probs, plan.thresholds)
    quality = aggregate(scores, scoring.aggregator, scoring.alpha, scoring.temperature)
    judged = plan.judged[None, :]
    selected = {s.name: _selected(s, cuts[s.name], batch) for s in plan.selections}
    if filter_by == "prune_by_noise_rate":
        class_flags = selected["noise_rate"]
    elif filter_by == "prune_by_class":
        class_flags = selected["by_class"]
    elif filter_by == "both":
        class_flags = selected["noise_rate"] & selected["by_class"]
    elif filter_by == "confident_learning":
        counted, guess = confident_guess(batch, *plan.thresholds.cut_points())
        class_flags = fl.confident_learning_flags(batch, counted, guess) & judged
    elif filter_by == "predicted_neq_given":
        class_flags = fl.disagreements(batch) & judged
    else:
        class_flags = selected["low_class"]
    if filter_by in LOW_FILTERS:
        is_issue = selected["low_rows"]
    else:
        is_issue = class_flags.any(axis=1)
    return BatchResult(quality, is_issue, class_flags, scores)

"""cleanlab's filter arguments as labelqa's audit configuration, checked, and the audit run on
the checked matrices (the arguments of `filter` and `dataset` meet here once)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from labelqa.core.constants import DEFAULT_ALPHA
from labelqa.core.filters import FILTERS, PRUNE_FILTERS, Filter, filter_named
from labelqa.core.matrix import MatrixAudit, audit_matrix
from labelqa.core.params import IssuesParams, ScoringParams
from labelqa.core.scores import SCORING_METHODS

#: the keys of `rank_by_kwargs` that cleanlab's ranking uses
RANK_BY_KEYS = ("adjust_pred_probs",)


def issues_config(filter_by: str, frac_noise: float, num_to_remove_per_class: Any,
                  min_examples_per_class: int, num_classes: int) -> IssuesParams:
    if filter_by not in FILTERS:
        raise ValueError(f"filter_by: {filter_by!r} is not a filter; expected one of "
                         f"{', '.join(FILTERS)}")
    if not 0.0 <= float(frac_noise) <= 1.0:
        raise ValueError(f"frac_noise: must be within [0, 1], got {frac_noise!r}")
    if int(min_examples_per_class) != min_examples_per_class or min_examples_per_class < 0:
        raise ValueError(f"min_examples_per_class: must be an integer >= 0, got "
                         f"{min_examples_per_class!r}")
    if not filter_named(filter_by).prunes:
        if num_to_remove_per_class is not None:
            raise ValueError(f"num_to_remove_per_class: not supported with "
                             f"filter_by={filter_by!r}, only with {', '.join(PRUNE_FILTERS)}")
        if frac_noise != 1.0:
            warnings.warn(f"frac_noise is not used with filter_by={filter_by!r}", UserWarning,
                          stacklevel=3)
    remove = None
    if num_to_remove_per_class is not None:
        values = np.asarray(num_to_remove_per_class)
        if values.shape != (num_classes,) or values.dtype.kind not in "iu":
            raise ValueError(f"num_to_remove_per_class: must be {num_classes} integers (one per "
                             f"class, pred_probs has {num_classes} columns), got "
                             f"{num_to_remove_per_class!r}")
        remove = tuple(int(value) for value in values)
    return IssuesParams(filter_by, float(frac_noise), int(min_examples_per_class), remove)


def ranking_config(method: str | None, rank_by_kwargs: Mapping[str, Any] | None
                   ) -> ScoringParams:
    """The score the ranked outputs sort by: EMA(0.8) of the per-class `method` scores."""
    if method not in SCORING_METHODS:
        raise ValueError(f"return_indices_ranked_by: {method!r} is not a scoring method; "
                         f"expected None or one of {', '.join(SCORING_METHODS)}")
    kwargs = dict(rank_by_kwargs or {})
    unknown = sorted(set(kwargs) - set(RANK_BY_KEYS))
    if unknown:
        raise TypeError(f"rank_by_kwargs: unexpected keyword(s) {', '.join(unknown)}; the "
                        f"ranking takes {', '.join(RANK_BY_KEYS)}")
    adjust = bool(kwargs.get("adjust_pred_probs", False))
    if adjust and method == "confidence_weighted_entropy":
        raise ValueError("adjust_pred_probs is not supported for confidence_weighted_entropy")
    return ScoringParams(method=method, adjust_pred_probs=adjust, alpha=DEFAULT_ALPHA)


def joint_argument(confident_joint: Any, chosen: Filter, num_classes: int
                   ) -> np.ndarray | None:
    """A user's (K, 2, 2) confident joint where the filter uses it, else None (with cleanlab's
    warnings)."""
    if confident_joint is None:
        return None
    joint = np.asarray(confident_joint)
    if joint.shape == (num_classes, num_classes):
        warnings.warn("confident_joint: a (K, K) joint is the old multi-label format and is "
                      "ignored; pass cleanlab.count.compute_confident_joint(..., "
                      "multi_label=True)'s (K, 2, 2) joint", UserWarning, stacklevel=3)
        return None
    if joint.shape != (num_classes, 2, 2):
        raise ValueError(f"confident_joint should be of shape (num_classes, 2, 2) = "
                         f"({num_classes}, 2, 2), got {joint.shape}")
    if joint.dtype.kind not in "iu":
        if joint.dtype.kind != "f" or not np.all(np.isfinite(joint)) or \
                not np.all(joint == np.round(joint)):
            raise ValueError("confident_joint: must hold whole counts")
    if (joint < 0).any():
        raise ValueError("confident_joint: counts must be >= 0")
    if chosen.estimates_joint:
        warnings.warn(f"confident_joint is not used with filter_by={chosen.name!r} (the "
                      "joint is estimated from the data)", UserWarning, stacklevel=3)
        return None
    if not chosen.prunes:
        return None
    return joint.astype(np.int64)


def require_judgeable(given: np.ndarray, chosen: Filter, per_class: bool) -> None:
    """cleanlab's filters raise for a class they cannot judge; so do these.

    (labelqa's Spark audit judges the other classes instead and records why in
    `classes.note`.) A class annotated on no example can be judged by the prune and
    confident_learning filters; `find_label_issues` with a low_* filter judges it too, only
    the per-class low_* filter cannot.
    """
    notes = chosen.notes(given.sum(axis=0), len(given), examples_only=not per_class)
    for k, note in enumerate(notes):
        if note is not None:
            reason = note.removesuffix("; not judged")
            raise ValueError(f"Labels must contain at least 2 classes: class {k} is {reason}")


def require_multilabel(given: np.ndarray) -> None:
    """cleanlab's scorers need labels in multi-label form: K > 1 and both 0 and 1 present."""
    if given.shape[1] < 2:
        raise ValueError("Labels must be in multi-label format: pred_probs has one column; "
                         "multi-label scoring needs at least 2 classes")
    if given.all() or not given.any():
        state = "annotated with every class" if given.all() else "annotated with no class"
        raise ValueError(f"Labels must be in multi-label format: every example is {state}")


def run(given: np.ndarray, probs: np.ndarray, issues: IssuesParams, *,
        scoring: ScoringParams = ScoringParams(), calibrated_joint: np.ndarray | None = None,
        keep_class_flags: bool = False, keep_class_scores: bool = False) -> MatrixAudit:
    return audit_matrix(None, given, probs, scoring, issues,
                        calibrated_joint=calibrated_joint, keep_class_flags=keep_class_flags,
                        keep_class_scores=keep_class_scores)


def ranked(rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """`rows` by ascending key, ties by row index (the contract's order)."""
    return rows[np.lexsort((rows, keys))].astype(np.int64)

"""Find the examples and the (example, class) annotations that look wrong: cleanlab 2.9's
`cleanlab.multilabel_classification.filter`, same names, parameters, defaults and returns.

Switch with one import::

    from labelqa.multilabel_classification.filter import find_label_issues

Differences from cleanlab, each on purpose:

* `labels` may also be an (N, K) 0/1 or boolean matrix; a class index outside [0, K) is an
  error (cleanlab's filters drop it with a warning, its scorers raise).
* Rows tied on a cut-off's sort key go to the smaller row index (cleanlab's `np.argsort` is
  not stable, so its choice among tied rows depends on the CPU); ranked outputs order ties by
  row index too.
* With a `low_*` filter and `return_indices_ranked_by`, the indices are ordered by their
  score (cleanlab pairs two different orders and returns a scrambled one) and no issues give
  an empty array (cleanlab raises).
* `n_jobs` and `verbose` change nothing: the work is vectorised over all classes at once.
* `low_memory=True` runs cleanlab's mini-batch estimate (see `find_label_issues`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from labelqa.core.params import IssuesParams
from labelqa.multilabel_classification import _audit
from labelqa.multilabel_classification._inputs import inputs
from labelqa.multilabel_classification._low_memory import low_memory_flags
from labelqa.multilabel_classification.rank import _scores

#: cleanlab's default `rank_by_kwargs={}`, read-only
NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class _FilterArguments:
    """The filter arguments both public functions take, checked in one place."""

    filter_by: str
    frac_noise: float
    num_to_remove_per_class: Any
    min_examples_per_class: int
    confident_joint: Any

    def checked(self, given: np.ndarray, per_class: bool
                ) -> tuple[IssuesParams, np.ndarray | None]:
        """The audit configuration and the joint to use, after cleanlab's checks."""
        num_classes = given.shape[1]
        issues = _audit.issues_config(self.filter_by, self.frac_noise,
                                      self.num_to_remove_per_class,
                                      self.min_examples_per_class, num_classes)
        joint = _audit.joint_argument(self.confident_joint, issues.filter, num_classes)
        _audit.require_judgeable(given, issues.filter, per_class=per_class)
        return issues, joint

    def low_memory_flags(self, given: np.ndarray, probs: np.ndarray, method: str | None,
                         rank_by_kwargs: Mapping[str, Any]) -> np.ndarray:
        """cleanlab's low_memory path, warning about each argument it ignores."""
        ignored = {"filter_by": self.filter_by != "prune_by_noise_rate",
                   "frac_noise": self.frac_noise != 1.0,
                   "num_to_remove_per_class": self.num_to_remove_per_class is not None,
                   "min_examples_per_class": self.min_examples_per_class != 1,
                   "confident_joint": self.confident_joint is not None,
                   "rank_by_kwargs": bool(rank_by_kwargs)}
        for name, given_by_user in ignored.items():
            if given_by_user:
                warnings.warn(f"`{name}` is not used when `low_memory=True`.", UserWarning,
                              stacklevel=3)
        if method is not None:
            _audit.ranking_config(method, None)
        return low_memory_flags(given, probs, method or "self_confidence")


def find_label_issues(labels: Any, pred_probs: Any, return_indices_ranked_by: str | None = None,
                      rank_by_kwargs: Mapping[str, Any] = NO_KWARGS,
                      filter_by: str = "prune_by_noise_rate",
                      frac_noise: float = 1.0, num_to_remove_per_class: Any = None,
                      min_examples_per_class: int = 1, confident_joint: Any = None,
                      n_jobs: int | None = None, verbose: bool = False,
                      low_memory: bool = False) -> np.ndarray:
    """Which examples have a label issue in any class.

    Returns an (N,) bool mask, or with `return_indices_ranked_by` (`"self_confidence"`,
    `"normalized_margin"` or `"confidence_weighted_entropy"`) the int64 indices of the flagged
    examples, most severe first: ascending by the exponential moving average (alpha 0.8) of
    their per-class scores of that method (`rank_by_kwargs={"adjust_pred_probs": True}`
    adjusts them), ties by index.

    `filter_by`: `prune_by_noise_rate` (default), `prune_by_class`, `both`,
    `confident_learning`, `predicted_neq_given`, `low_self_confidence`,
    `low_normalized_margin` (the last two are the same for multi-label data, as in cleanlab).
    `frac_noise`, `num_to_remove_per_class` (K ints) and `min_examples_per_class` tune the
    prune filters; `confident_joint` (K, 2, 2), e.g. from
    `cleanlab.count.compute_confident_joint(..., multi_label=True)`, replaces the estimated
    joint for them. `low_memory=True` is cleanlab's approximate mini-batch estimate: it ignores
    `filter_by`, `frac_noise`, `num_to_remove_per_class` and `min_examples_per_class` with a
    warning each, as cleanlab does, and `confident_joint` too (cleanlab raises an ambiguous
    truth-value error for one). `n_jobs` and `verbose` are
    accepted and change nothing.

    Raises ValueError for a class annotated on every example ("Labels must contain at least 2
    classes"), as cleanlab does; labelqa's Spark audit judges the other classes instead.
    """
    given, probs = inputs(labels, pred_probs)
    arguments = _FilterArguments(filter_by, frac_noise, num_to_remove_per_class,
                                 min_examples_per_class, confident_joint)
    if low_memory:
        mask = arguments.low_memory_flags(given, probs, return_indices_ranked_by,
                                          rank_by_kwargs).any(axis=1)
        if return_indices_ranked_by is None:
            return mask
        _audit.require_multilabel(given)
        return _ranked_rows(given, probs, mask, return_indices_ranked_by, rank_by_kwargs)
    issues, joint = arguments.checked(given, per_class=False)
    if return_indices_ranked_by is None:
        return _audit.run(given, probs, issues, calibrated_joint=joint).is_label_issue
    scoring = _audit.ranking_config(return_indices_ranked_by, rank_by_kwargs)
    _audit.require_multilabel(given)
    result = _audit.run(given, probs, issues, scoring=scoring, calibrated_joint=joint)
    flagged = np.flatnonzero(result.is_label_issue)
    return _audit.ranked(flagged, result.label_quality_score[flagged])


def _ranked_rows(given: np.ndarray, probs: np.ndarray, mask: np.ndarray, method: str,
                 rank_by_kwargs: Mapping[str, Any]) -> np.ndarray:
    scoring = _audit.ranking_config(method, rank_by_kwargs)
    flagged = np.flatnonzero(mask)
    scores = _scores(given, probs, scoring.method, scoring.adjust_pred_probs, None)
    return _audit.ranked(flagged, scores[flagged])


def find_multilabel_issues_per_class(
        labels: Any, pred_probs: Any, return_indices_ranked_by: str | None = None,
        rank_by_kwargs: Mapping[str, Any] = NO_KWARGS, filter_by: str = "prune_by_noise_rate",
        frac_noise: float = 1.0, num_to_remove_per_class: Any = None,
        min_examples_per_class: int = 1, confident_joint: Any = None,
        n_jobs: int | None = None, verbose: bool = False, low_memory: bool = False,
) -> np.ndarray | tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Which annotations look wrong, per class: an (N, K) bool array, `[i, k]` = example i's
    annotation of class k (given or missing) looks wrong.

    With `return_indices_ranked_by`, a tuple of three length-K lists as cleanlab returns
    them: the flagged row indices of each class ordered by that class's score of the method
    (ties by index), each class's 0/1 labels (int64), and each class's (N, 2) `[1 - p, p]`
    probabilities. Arguments as in `find_label_issues`; with a low_* filter a class annotated
    on no example cannot be judged either (ValueError, as in cleanlab).
    """
    given, probs = inputs(labels, pred_probs)
    arguments = _FilterArguments(filter_by, frac_noise, num_to_remove_per_class,
                                 min_examples_per_class, confident_joint)
    if low_memory:
        flags = arguments.low_memory_flags(given, probs, return_indices_ranked_by,
                                           rank_by_kwargs)
        if return_indices_ranked_by is None:
            return flags
        # cleanlab returns each class's low_memory issues in ascending index order
        _, flagged_rows = np.nonzero(flags.T)  # by class, then ascending row
        per_class = np.split(flagged_rows.astype(np.int64), np.cumsum(flags.sum(axis=0))[:-1])
        return per_class, *_binary_problems(given, probs)
    issues, joint = arguments.checked(given, per_class=True)
    if return_indices_ranked_by is None:
        result = _audit.run(given, probs, issues, calibrated_joint=joint, keep_class_flags=True)
        assert result.class_flags is not None
        return result.class_flags
    scoring = _audit.ranking_config(return_indices_ranked_by, rank_by_kwargs)
    result = _audit.run(given, probs, issues, scoring=scoring, calibrated_joint=joint,
                        keep_class_flags=True, keep_class_scores=True)
    assert result.class_flags is not None and result.class_scores is not None
    classes, rows = np.nonzero(result.class_flags.T)  # by class, then ascending row
    keys = result.class_scores[rows, classes]
    order = np.lexsort((rows, keys, classes))
    counts = result.class_flags.sum(axis=0)
    per_class = np.split(rows[order].astype(np.int64), np.cumsum(counts)[:-1])
    return per_class, *_binary_problems(given, probs)


def _binary_problems(given: np.ndarray, probs: np.ndarray
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each class's one-vs-rest problem as cleanlab returns it: 0/1 labels and `[1 - p, p]`."""
    labels = [given[:, k].astype(np.int64) for k in range(given.shape[1])]
    one = probs.dtype.type(1)
    pairs = [np.stack([one - probs[:, k], probs[:, k]], axis=1) for k in range(probs.shape[1])]
    return labels, pairs


__all__ = ["find_label_issues", "find_multilabel_issues_per_class"]

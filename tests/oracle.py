"""What cleanlab 2.9 says about a dataset: the reference every parity test compares with.

Where cleanlab raises for a class it cannot judge (annotated on every example, or on none
under filters that need both sides), the reference is cleanlab run without those classes;
labelqa must judge the other classes exactly as cleanlab does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from cleanlab.count import compute_confident_joint, get_confident_thresholds
from cleanlab.multilabel_classification import dataset as cl_dataset
from cleanlab.multilabel_classification.filter import (
    find_label_issues,
    find_multilabel_issues_per_class,
)
from cleanlab.multilabel_classification.rank import (
    get_label_quality_scores,
    get_label_quality_scores_per_class,
)

from labelqa.config import LOW_FILTERS, IssuesConfig, ScoringConfig
from labelqa.sample import Sample


@dataclass(frozen=True)
class Reference:
    judged: np.ndarray  # (K,) classes cleanlab can judge under the filter
    is_label_issue: np.ndarray  # (n,)
    class_flags: np.ndarray  # (n, K)
    label_quality_score: np.ndarray  # (n,)
    class_scores: np.ndarray  # (n, K)
    low_rows_key: np.ndarray  # (n,) EMA(0.8) self-confidence: the low_* ranking key


def _labels(given: np.ndarray) -> list[list[int]]:
    return [list(map(int, np.flatnonzero(row))) for row in given]


def judged_classes(given: np.ndarray, filter_by: str) -> np.ndarray:
    counts = given.sum(axis=0)
    judged = counts < len(given)
    if filter_by in LOW_FILTERS or filter_by == "predicted_neq_given":
        judged &= counts > 0
    return judged


def reference(sample: Sample, scoring: ScoringConfig, issues: IssuesConfig) -> Reference:
    given, probs = sample.given, sample.probs
    judged = judged_classes(given, issues.filter_by)
    sub_labels, sub_probs = _labels(given[:, judged]), probs[:, judged]
    kwargs = dict(filter_by=issues.filter_by, n_jobs=1)
    if issues.filter_by not in LOW_FILTERS:
        kwargs.update(frac_noise=issues.frac_noise,
                      min_examples_per_class=issues.min_examples_per_class)
    if issues.num_to_remove_per_class is not None:
        kwargs["num_to_remove_per_class"] = list(np.asarray(issues.num_to_remove_per_class)[judged])
    aggregator = ({"method": "exponential_moving_average", "alpha": scoring.alpha}
                  if scoring.aggregator == "exponential_moving_average"
                  else {"method": "softmin", "temperature": scoring.temperature})
    labels = _labels(given)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flags = np.zeros(given.shape, dtype=bool)
        flags[:, judged] = find_multilabel_issues_per_class(sub_labels, sub_probs, **kwargs)
        low_key = get_label_quality_scores(labels, probs)
        if issues.filter_by in LOW_FILTERS and not judged.all():
            # cleanlab's low_* path: n = confident-learning issues, then the n lowest scores
            count = int(find_label_issues(sub_labels, sub_probs, filter_by="confident_learning",
                                          n_jobs=1).sum())
            mask = np.zeros(len(given), dtype=bool)
            mask[np.argsort(low_key, kind="stable")[:count]] = True
        else:
            mask = find_label_issues(sub_labels, sub_probs, **kwargs)
        scores = get_label_quality_scores(labels, probs, method=scoring.method,
                                          adjust_pred_probs=scoring.adjust_pred_probs,
                                          aggregator_kwargs=aggregator)
        per_class = get_label_quality_scores_per_class(labels, probs, method=scoring.method,
                                                       adjust_pred_probs=scoring.adjust_pred_probs)
    return Reference(judged, mask, flags, scores, per_class, low_key)


def thresholds(sample: Sample) -> np.ndarray:
    return get_confident_thresholds(_labels(sample.given), sample.probs, multi_label=True)


def confident_joint(sample: Sample) -> np.ndarray:
    return compute_confident_joint(_labels(sample.given), sample.probs, multi_label=True)


def class_ranking(sample: Sample):
    """cleanlab's rank_classes_by_multilabel_quality and health score (default filter)."""
    labels = _labels(sample.given)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranking = cl_dataset.rank_classes_by_multilabel_quality(labels, sample.probs)
        health = cl_dataset.overall_multilabel_health_score(labels, sample.probs)
    return ranking.set_index("Class Index").sort_index(), health


def assert_same_selection(ours: np.ndarray, theirs: np.ndarray, keys: np.ndarray, what: str,
                          ties_allowed: bool) -> int:
    """Equal flags; where ties are allowed, a differing flag must sit on the cut-off: its key
    equals the largest key flagged by either side (the contract's tie rule).

    Returns the number of differing flags (0 without ties).
    """
    differing = ours != theirs
    if not differing.any():
        return 0
    assert ties_allowed, f"{what}: {differing.sum()} flags differ from cleanlab"
    boundary = keys[ours | theirs].max()
    off_cut = differing & ~np.isclose(keys, boundary, rtol=0, atol=1e-12)
    assert not off_cut.any(), (f"{what}: flags differ away from the cut-off at rows "
                               f"{np.flatnonzero(off_cut)[:5]}")
    return int(differing.sum())

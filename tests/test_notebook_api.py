"""`labelqa.multilabel_classification` is cleanlab 2.9's multi-label API: the same calls give
the same answers (masks, ranked indices, per-class issues, class tables, scores), on the
datasets of the Spark parity grid, for every filter, method, aggregator and option.

Allowed differences are the contract's: rows tied with a cut-off's sort key may differ
(labelqa breaks ties by row index), ranked ties are ordered by row index, counts are exact.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
from cleanlab.count import compute_confident_joint
from cleanlab.multilabel_classification import dataset as cl_dataset
from cleanlab.multilabel_classification import filter as cl_filter
from cleanlab.multilabel_classification import rank as cl_rank

from labelqa.config import FILTERS, LOW_FILTERS, PRUNE_FILTERS
from labelqa.multilabel_classification import dataset, filter, rank
from tests import oracle
from tests.datasets import parity_cases

CASES = {case.name: case.sample for case in parity_cases()}
METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def _cleanlab(function, *args, **kwargs):
    """cleanlab's answer, or the ValueError it raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return function(*args, **kwargs)
        except ValueError as error:
            return error


def _ours(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _ties(name: str) -> bool:
    return "rounded" in name


def _score_tolerance(probs: np.ndarray, method: str, adjust: bool, softmin: bool = False
                     ) -> float:
    """As in the Spark parity tests: float32 thresholds are exact means rounded once
    (cleanlab: pairwise float32 sums), float32 logarithms correctly rounded (cleanlab: logf)."""
    single = probs.dtype == np.float32
    if single and (adjust or method == "confidence_weighted_entropy"):
        return 1e-6
    if method == "confidence_weighted_entropy" or softmin:
        return 1e-9
    if adjust:  # float64 thresholds: the exact mean rounded once, within an ulp of np.mean's
        return 1e-12
    return 0.0


def _assert_same_class_flags(name, sample, ours, theirs, filter_by):
    tie_rule = _ties(name) and (filter_by in PRUNE_FILTERS or filter_by in LOW_FILTERS)
    given_side = np.where(sample.given, sample.probs, 1 - sample.probs).astype(np.float64)
    for k in range(sample.given.shape[1]):
        groups = ([slice(None)] if filter_by in LOW_FILTERS
                  else [sample.given[:, k], ~sample.given[:, k]])
        for rows in groups:
            oracle.assert_same_selection(ours[rows, k], theirs[rows, k], given_side[rows, k],
                                         f"{name} class {k}", tie_rule)


def _assert_ordered(ranked, keys):
    """Ascending by key, ties by index."""
    np.testing.assert_array_equal(ranked, ranked[np.lexsort((ranked, keys[ranked]))])


def _mask(indices, num_rows):
    mask = np.zeros(num_rows, dtype=bool)
    mask[indices] = True
    return mask


# ---- filter ----------------------------------------------------------------------------------

@pytest.mark.parametrize("filter_by", FILTERS)
@pytest.mark.parametrize("name", CASES)
def test_find_label_issues_equals_cleanlab(name, filter_by):
    sample = CASES[name]
    labels = sample.label_lists
    theirs = _cleanlab(cl_filter.find_label_issues, labels, sample.probs, filter_by=filter_by,
                       n_jobs=1)
    per_class_theirs = _cleanlab(cl_filter.find_multilabel_issues_per_class, labels,
                                 sample.probs, filter_by=filter_by, n_jobs=1)
    for function, answer in ((filter.find_label_issues, theirs),
                             (filter.find_multilabel_issues_per_class, per_class_theirs)):
        if isinstance(answer, ValueError):
            assert "Labels must contain at least 2 classes" in str(answer)
            with pytest.raises(ValueError, match="Labels must contain at least 2 classes: "
                                                 "class [0-9]+ is annotated on"):
                _ours(function, labels, sample.probs, filter_by=filter_by)
    if isinstance(theirs, ValueError):
        return
    ours = _ours(filter.find_label_issues, labels, sample.probs, filter_by=filter_by)
    assert ours.dtype == bool and ours.shape == (len(labels),)
    if not isinstance(per_class_theirs, ValueError):
        per_class = _ours(filter.find_multilabel_issues_per_class, labels, sample.probs,
                          filter_by=filter_by)
        assert per_class.dtype == bool and per_class.shape == sample.given.shape
        _assert_same_class_flags(name, sample, per_class, per_class_theirs, filter_by)
        if filter_by not in LOW_FILTERS:
            np.testing.assert_array_equal(ours, per_class.any(axis=1))
    if filter_by in LOW_FILTERS:
        keys = cl_rank.get_label_quality_scores(labels, sample.probs)
        oracle.assert_same_selection(ours, theirs, keys, f"{name} rows", _ties(name))
    elif not _ties(name) or filter_by not in PRUNE_FILTERS:
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("method, adjust", [(m, a) for m in METHODS for a in (False, True)
                                            if not (a and m == "confidence_weighted_entropy")])
@pytest.mark.parametrize("name", CASES)
def test_ranked_indices_equal_cleanlab(name, method, adjust):
    sample = CASES[name]
    labels = sample.label_lists
    kwargs = dict(return_indices_ranked_by=method, rank_by_kwargs={"adjust_pred_probs": adjust})
    theirs = _cleanlab(cl_filter.find_label_issues, labels, sample.probs, n_jobs=1, **kwargs)
    if isinstance(theirs, ValueError):
        with pytest.raises(ValueError, match="Labels must contain at least 2 classes"):
            _ours(filter.find_label_issues, labels, sample.probs, **kwargs)
        return
    ours = _ours(filter.find_label_issues, labels, sample.probs, **kwargs)
    assert ours.dtype == np.int64
    keys = cl_rank.get_label_quality_scores(labels, sample.probs, method=method,
                                            adjust_pred_probs=adjust)
    _assert_ordered(ours, keys)
    # the same set as the mask (whose agreement with cleanlab the test above checks)
    np.testing.assert_array_equal(np.sort(ours), np.flatnonzero(
        _ours(filter.find_label_issues, labels, sample.probs)))
    if not _ties(name):
        np.testing.assert_array_equal(ours, theirs)

    per_theirs = _cleanlab(cl_filter.find_multilabel_issues_per_class, labels, sample.probs,
                           n_jobs=1, **kwargs)
    per_ours = _ours(filter.find_multilabel_issues_per_class, labels, sample.probs, **kwargs)
    class_keys = cl_rank.get_label_quality_scores_per_class(labels, sample.probs, method=method,
                                                            adjust_pred_probs=adjust)
    num_rows, num_classes = sample.given.shape
    masks = [np.stack([_mask(found[k], num_rows) for k in range(num_classes)], axis=1)
             for found in (per_ours[0], per_theirs[0])]
    _assert_same_class_flags(name, sample, *masks, "prune_by_noise_rate")
    for k in range(num_classes):
        _assert_ordered(per_ours[0][k], class_keys[:, k])
        if not _ties(name):
            np.testing.assert_array_equal(per_ours[0][k], per_theirs[0][k])
        for ours_part, theirs_part in ((per_ours[1][k], per_theirs[1][k]),
                                       (per_ours[2][k], per_theirs[2][k])):
            assert ours_part.dtype == theirs_part.dtype
            np.testing.assert_array_equal(ours_part, theirs_part)


@pytest.mark.parametrize("name", ["float64-int-ids", "float32-string-ids",
                                  "rare-and-absent-classes", "thirty-two-classes-float32"])
@pytest.mark.parametrize("filter_by", PRUNE_FILTERS)
def test_prune_options_equal_cleanlab(name, filter_by):
    sample = CASES[name]
    labels, num_classes = sample.label_lists, sample.given.shape[1]
    rng = np.random.default_rng(len(name))
    options = [dict(frac_noise=0.6), dict(min_examples_per_class=150),
               dict(num_to_remove_per_class=[int(n) for n in rng.integers(0, 12, num_classes)]),
               dict(frac_noise=0.35, min_examples_per_class=40)]
    for option in options:
        theirs = _cleanlab(cl_filter.find_multilabel_issues_per_class, labels, sample.probs,
                           filter_by=filter_by, n_jobs=1, **option)
        ours = _ours(filter.find_multilabel_issues_per_class, labels, sample.probs,
                     filter_by=filter_by, **option)
        np.testing.assert_array_equal(ours, theirs, err_msg=str(option))
        np.testing.assert_array_equal(
            _ours(filter.find_label_issues, labels, sample.probs, filter_by=filter_by, **option),
            _cleanlab(cl_filter.find_label_issues, labels, sample.probs, filter_by=filter_by,
                      n_jobs=1, **option), err_msg=str(option))


@pytest.mark.parametrize("name", ["float64-int-ids", "float32-string-ids", "two-classes"])
def test_a_given_confident_joint_is_used_as_cleanlab_uses_it(name):
    sample = CASES[name]
    labels = sample.label_lists
    joint = compute_confident_joint(labels, sample.probs, multi_label=True)
    np.testing.assert_array_equal(
        _ours(filter.find_label_issues, labels, sample.probs, confident_joint=joint),
        _ours(filter.find_label_issues, labels, sample.probs))
    # a different joint (twice the off-diagonal counts) changes the prune counts alike
    other = joint.copy()
    other[:, 0, 1] *= 2
    other[:, 1, 0] *= 2
    for filter_by in PRUNE_FILTERS:
        np.testing.assert_array_equal(
            _ours(filter.find_multilabel_issues_per_class, labels, sample.probs,
                  filter_by=filter_by, confident_joint=other),
            _cleanlab(cl_filter.find_multilabel_issues_per_class, labels, sample.probs,
                      filter_by=filter_by, confident_joint=other, n_jobs=1))
    with pytest.raises(ValueError, match=r"confident_joint should be of shape \(num_classes, "
                                         r"2, 2\)"):
        filter.find_label_issues(labels, sample.probs, confident_joint=np.ones((3, 2)))
    with pytest.warns(UserWarning, match="not used with filter_by='confident_learning'"):
        filter.find_label_issues(labels, sample.probs, confident_joint=joint,
                                 filter_by="confident_learning")


@pytest.mark.parametrize("method", [None, "self_confidence", "normalized_margin",
                                    "confidence_weighted_entropy"])
@pytest.mark.parametrize("name", ["float64-int-ids", "float32-string-ids",
                                  "rare-and-absent-classes", "rounded-2-decimals"])
def test_low_memory_equals_cleanlab(name, method):
    sample = CASES[name]
    labels = sample.label_lists
    kwargs = dict(low_memory=True, return_indices_ranked_by=method)
    theirs = _cleanlab(cl_filter.find_multilabel_issues_per_class, labels, sample.probs,
                       **kwargs)
    ours = _ours(filter.find_multilabel_issues_per_class, labels, sample.probs, **kwargs)
    keys = cl_rank.get_label_quality_scores_per_class(labels, sample.probs,
                                                      method=method or "self_confidence")
    if method is None:
        for k in range(sample.given.shape[1]):
            oracle.assert_same_selection(ours[:, k], theirs[:, k], keys[:, k],
                                         f"{name} class {k}", _ties(name))
    else:
        for k in range(sample.given.shape[1]):
            # cleanlab returns each class's low_memory issues in ascending index order
            assert list(ours[0][k]) == sorted(ours[0][k])
            mask_ours = np.isin(np.arange(len(labels)), ours[0][k])
            mask_theirs = np.isin(np.arange(len(labels)), theirs[0][k])
            oracle.assert_same_selection(mask_ours, mask_theirs, keys[:, k],
                                         f"{name} class {k}", _ties(name))
    rows_theirs = _cleanlab(cl_filter.find_label_issues, labels, sample.probs, **kwargs)
    rows_ours = _ours(filter.find_label_issues, labels, sample.probs, **kwargs)
    if not _ties(name):
        np.testing.assert_array_equal(rows_ours, rows_theirs)


def test_low_memory_warns_about_the_arguments_it_ignores():
    sample = CASES["float64-int-ids"]
    with pytest.warns(UserWarning, match="`frac_noise` is not used when `low_memory=True`"):
        filter.find_label_issues(sample.label_lists, sample.probs, low_memory=True,
                                 frac_noise=0.5)


def test_a_low_filter_ranks_by_score_where_cleanlab_scrambles_the_order():
    sample = CASES["float64-int-ids"]
    labels = sample.label_lists
    ranked = filter.find_label_issues(labels, sample.probs, filter_by="low_self_confidence",
                                      return_indices_ranked_by="self_confidence")
    mask = filter.find_label_issues(labels, sample.probs, filter_by="low_self_confidence")
    scores = rank.get_label_quality_scores(labels, sample.probs)
    np.testing.assert_array_equal(np.sort(ranked), np.flatnonzero(mask))
    assert np.all(np.diff(scores[ranked]) >= 0)


# ---- rank ------------------------------------------------------------------------------------

AGGREGATORS = [{"method": "exponential_moving_average", "alpha": 0.8},
               {"method": "exponential_moving_average", "alpha": 0.35},
               {"method": "exponential_moving_average"},
               {"method": "softmin", "temperature": 0.1},
               {"method": "softmin", "temperature": 0.7},
               {"method": np.min}, {"method": np.mean}]


@pytest.mark.parametrize("aggregator", AGGREGATORS,
                         ids=lambda a: "-".join(str(getattr(v, "__name__", v))
                                                for v in a.values()))
@pytest.mark.parametrize("method, adjust", [(m, a) for m in METHODS for a in (False, True)
                                            if not (a and m == "confidence_weighted_entropy")])
@pytest.mark.parametrize("name", CASES)
def test_label_quality_scores_equal_cleanlab(name, method, adjust, aggregator):
    sample = CASES[name]
    labels = sample.label_lists
    theirs = cl_rank.get_label_quality_scores(labels, sample.probs, method=method,
                                              adjust_pred_probs=adjust,
                                              aggregator_kwargs=dict(aggregator))
    ours = rank.get_label_quality_scores(labels, sample.probs, method=method,
                                         adjust_pred_probs=adjust, aggregator_kwargs=aggregator)
    assert ours.dtype == np.float64 and ours.shape == theirs.shape
    softmin = aggregator["method"] == "softmin"
    np.testing.assert_allclose(ours, theirs, rtol=0,
                               atol=_score_tolerance(sample.probs, method, adjust, softmin))
    if aggregator is AGGREGATORS[0]:
        per_class = rank.get_label_quality_scores_per_class(labels, sample.probs, method=method,
                                                            adjust_pred_probs=adjust)
        per_class_theirs = cl_rank.get_label_quality_scores_per_class(
            labels, sample.probs, method=method, adjust_pred_probs=adjust)
        assert per_class.dtype == np.float64
        np.testing.assert_allclose(per_class, per_class_theirs, rtol=0,
                                   atol=_score_tolerance(sample.probs, method, adjust))


def test_scores_of_the_documented_example():
    labels = [[1], [0, 2]]
    probs = np.array([[0.1, 0.9, 0.1], [0.4, 0.1, 0.9]])
    np.testing.assert_array_equal(rank.get_label_quality_scores(labels, probs), [0.9, 0.5])
    from labelqa.multilabel_classification import get_label_quality_scores
    assert get_label_quality_scores is rank.get_label_quality_scores


# ---- dataset ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in CASES if n != "class-on-every-example"])
def test_dataset_summaries_equal_cleanlab(name):
    sample = CASES[name]
    labels, probs = sample.label_lists, sample.probs
    names = [f"tag {k}" for k in range(probs.shape[1])]
    per_class = _ours(filter.find_multilabel_issues_per_class, labels, probs)
    label_issues = (per_class & sample.given).sum(axis=0)
    inverse = (per_class & ~sample.given).sum(axis=0)
    num_rows = len(labels)
    if not _ties(name):
        per_class_theirs = _cleanlab(cl_filter.find_multilabel_issues_per_class, labels, probs,
                                     n_jobs=1)
        np.testing.assert_array_equal(per_class, per_class_theirs)

    common = _ours(dataset.common_multilabel_issues, labels, probs, class_names=names)
    theirs = _cleanlab(cl_dataset.common_multilabel_issues, labels, probs, class_names=names)
    assert list(common.columns) == list(theirs.columns)
    assert common["Issue Probability"].is_monotonic_decreasing
    expected = pd.DataFrame({
        "Class Name": np.repeat(names, 2), "Class Index": np.repeat(np.arange(len(names)), 2),
        "In Given Label": np.tile([True, False], len(names)),
        "In Suggested Label": np.tile([False, True], len(names)),
        "Num Examples": np.stack([label_issues, inverse], axis=1).reshape(-1)})
    expected["Issue Probability"] = expected["Num Examples"] / num_rows
    key = ["Class Index", "In Given Label"]
    pd.testing.assert_frame_equal(common.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True))
    if not _ties(name):
        pd.testing.assert_frame_equal(common.sort_values(key).reset_index(drop=True),
                                      theirs.sort_values(key).reset_index(drop=True))

    ranking = _ours(dataset.rank_classes_by_multilabel_quality, labels, probs,
                    class_names=names)
    ranking_theirs = _cleanlab(cl_dataset.rank_classes_by_multilabel_quality, labels, probs,
                               class_names=names)
    assert list(ranking.columns) == list(ranking_theirs.columns)
    assert ranking["Label Quality Score"].is_monotonic_increasing
    by_class = ranking.set_index("Class Index").sort_index()
    np.testing.assert_array_equal(by_class["Label Issues"], label_issues)
    np.testing.assert_array_equal(by_class["Inverse Label Issues"], inverse)
    np.testing.assert_array_equal(by_class["Label Noise"], label_issues / num_rows)
    if not _ties(name):
        theirs_by_class = ranking_theirs.set_index("Class Index").sort_index()
        for column in ("Class Name", "Label Noise", "Inverse Label Noise",
                       "Label Quality Score"):
            pd.testing.assert_series_equal(by_class[column], theirs_by_class[column])
        # cleanlab's int(c / N * N) is c or c - 1; labelqa's is c
        for column in ("Label Issues", "Inverse Label Issues"):
            assert ((by_class[column] - theirs_by_class[column]).isin([0, 1])).all()

    health = _ours(dataset.overall_multilabel_health_score, labels, probs)
    mask = _ours(filter.find_label_issues, labels, probs)
    assert health == 1 - mask.sum() / num_rows
    if not _ties(name):
        assert health == _cleanlab(cl_dataset.overall_multilabel_health_score, labels, probs)

    summary = _ours(dataset.multilabel_health_summary, labels, probs, class_names=names,
                    verbose=False)
    assert list(summary) == ["overall_multilabel_health_score", "classes_by_multilabel_quality",
                             "common_multilabel_issues"]
    assert summary["overall_multilabel_health_score"] == health
    pd.testing.assert_frame_equal(summary["classes_by_multilabel_quality"], ranking)
    pd.testing.assert_frame_equal(summary["common_multilabel_issues"], common)


def test_rank_classes_detects_with_joint_as_cleanlab_does():
    sample = CASES["float64-int-ids"]
    labels, probs = sample.label_lists, sample.probs
    joint = compute_confident_joint(labels, probs, multi_label=True)
    joint[:, 0, 1] *= 3
    ours = dataset.rank_classes_by_multilabel_quality(labels, probs, joint=joint)
    theirs = _cleanlab(cl_dataset.rank_classes_by_multilabel_quality, labels, probs,
                       joint=joint)
    pd.testing.assert_series_equal(ours.set_index("Class Index").sort_index()["Label Noise"],
                                   theirs.set_index("Class Index").sort_index()["Label Noise"])
    common = dataset.common_multilabel_issues(labels, probs, confident_joint=joint)
    common_theirs = _cleanlab(cl_dataset.common_multilabel_issues, labels, probs,
                              confident_joint=joint)
    key = ["Class Index", "In Given Label"]
    pd.testing.assert_frame_equal(common.sort_values(key).reset_index(drop=True),
                                  common_theirs.sort_values(key).reset_index(drop=True))


def test_health_summary_prints_unless_quiet(capsys):
    sample = CASES["two-classes"]
    dataset.multilabel_health_summary(sample.label_lists, sample.probs, verbose=False)
    assert capsys.readouterr().out == ""
    summary = dataset.multilabel_health_summary(sample.label_lists, sample.probs)
    out = capsys.readouterr().out
    assert "900 examples" in out
    assert f"{summary['overall_multilabel_health_score']:.4f}" in out


# ---- inputs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["float64-int-ids", "float32-string-ids"])
def test_labels_as_a_matrix_give_the_same_answers(name):
    sample = CASES[name]
    for matrix in (sample.given, sample.given.astype(np.int8), sample.given.astype(float)):
        np.testing.assert_array_equal(filter.find_label_issues(matrix, sample.probs),
                                      filter.find_label_issues(sample.label_lists, sample.probs))
        np.testing.assert_array_equal(rank.get_label_quality_scores(matrix, sample.probs),
                                      rank.get_label_quality_scores(sample.label_lists,
                                                                    sample.probs))
    tuples = [tuple(row) for row in sample.label_lists]
    np.testing.assert_array_equal(filter.find_label_issues(tuples, sample.probs),
                                  filter.find_label_issues(sample.label_lists, sample.probs))


PROBS = np.array([[0.2, 0.9, 0.1], [0.7, 0.3, 0.6], [0.1, 0.2, 0.8]])


@pytest.mark.parametrize("labels, probs, message", [
    ([[0], [1]], PROBS, r"pred_probs and labels must have same length: labels has 2 rows, "
                        r"pred_probs 3"),
    ([[0], [1], [3]], PROBS, r"labels: class indices must be in \[0, 3\) \(pred_probs has 3 "
                             r"columns\); row 2 holds 3"),
    ([[0], [-1], [2]], PROBS, r"labels: class indices must be in \[0, 3\).*row 1 holds -1"),
    ([[0], [1.5], [2]], PROBS, r"labels: class indices must be integers; row 1 holds \[1.5\]"),
    ([[0], ["b"], [2]], PROBS, r"labels: class indices must be integers; row 1"),
    ([[0], [None], [2]], PROBS, r"labels: class indices must be integers; row 1 holds \[None\]"),
    ([0, [1], [2]], PROBS, r"labels: each element must be a list of class indices; row 0 is 0 "
                           r"\(int\)"),
    ([[0], [[1, 2]], [2]], PROBS, r"labels: each element must be a flat list"),
    (np.array([[1, 0, 2], [0, 1, 0], [0, 0, 1]]), PROBS,
     r"labels: the matrix must hold only 0 and 1; row 0, class 2 is 2"),
    (np.zeros((3, 2), dtype=bool), PROBS, r"labels: the 0/1 matrix has 2 columns, pred_probs 3"),
    (np.zeros(3), PROBS, r"labels: as an array it must be an \(N, K\) 0/1 matrix"),
    ([[0], [1], [2]], np.where(np.eye(3) > 0, np.nan, PROBS),
     r"pred_probs: values must be finite; row 0, class 0 is nan"),
    ([[0], [1], [2]], PROBS * 1.5, r"Values in pred_probs must be between 0 and 1 \(with a "
                                   r"1e-6 slack\): row 0, class 1 is 1.35"),
    ([[0], [1], [2]], PROBS[:, :1].reshape(-1), r"pred_probs: must be 2-D"),
    ([[0], [1], [2]], np.array([["a"] * 3] * 3), r"pred_probs: must be numeric"),
    ([], np.zeros((0, 3)), r"pred_probs: has no rows"),
])
def test_bad_input_names_the_argument_the_rule_and_the_row(labels, probs, message):
    for function in (filter.find_label_issues, filter.find_multilabel_issues_per_class,
                     rank.get_label_quality_scores, dataset.common_multilabel_issues):
        with pytest.raises(ValueError, match=message):
            function(labels, probs)


@pytest.mark.parametrize("call, error, message", [
    (lambda tags, p: filter.find_label_issues(tags, p, filter_by="prune"), ValueError,
     r"filter_by: 'prune' is not a filter; expected one of prune_by_noise_rate"),
    (lambda tags, p: filter.find_label_issues(tags, p, return_indices_ranked_by="margin"),
     ValueError, r"return_indices_ranked_by: 'margin' is not a scoring method"),
    (lambda tags, p: filter.find_label_issues(tags, p, return_indices_ranked_by="self_confidence",
                                           rank_by_kwargs={"alpha": 0.5}), TypeError,
     r"rank_by_kwargs: unexpected keyword\(s\) alpha"),
    (lambda tags, p: filter.find_label_issues(tags, p, filter_by="confident_learning",
                                           num_to_remove_per_class=[1, 1, 1]), ValueError,
     r"num_to_remove_per_class: not supported with filter_by='confident_learning'"),
    (lambda tags, p: filter.find_label_issues(tags, p, num_to_remove_per_class=[1, 1]), ValueError,
     r"num_to_remove_per_class: must be 3 integers"),
    (lambda tags, p: filter.find_label_issues(tags, p, frac_noise=1.5), ValueError,
     r"frac_noise: must be within \[0, 1\], got 1.5"),
    (lambda tags, p: filter.find_label_issues(tags, p, min_examples_per_class=-1), ValueError,
     r"min_examples_per_class: must be an integer >= 0"),
    (lambda tags, p: rank.get_label_quality_scores(tags, p, method="entropy"), ValueError,
     r"method: 'entropy' is not a scoring method"),
    (lambda tags, p: rank.get_label_quality_scores(tags, p, method="confidence_weighted_entropy",
                                                adjust_pred_probs=True), ValueError,
     r"adjust_pred_probs is not supported for confidence_weighted_entropy"),
    (lambda tags, p: rank.get_label_quality_scores(tags, p, aggregator_kwargs={"alpha": 0.5}),
     ValueError, r"aggregator_kwargs: needs a 'method'"),
    (lambda tags, p: rank.get_label_quality_scores(
        tags, p, aggregator_kwargs={"method": "exponential_moving_average", "alpha": 2}),
     ValueError, r"aggregator_kwargs: alpha must be in \[0, 1\], got 2"),
    (lambda tags, p: rank.get_label_quality_scores(
        tags, p, aggregator_kwargs={"method": "softmin", "alpha": 0.2}),
     TypeError, r"aggregator_kwargs: softmin got unexpected keyword\(s\) alpha"),
    (lambda tags, p: rank.get_label_quality_scores([[0, 1, 2]] * 3, p), ValueError,
     r"Labels must be in multi-label format: every example is annotated with every class"),
    (lambda tags, p: rank.get_label_quality_scores([[0], [0], [0]], p[:, :1]), ValueError,
     r"Labels must be in multi-label format: pred_probs has one column"),
    (lambda tags, p: rank.get_label_quality_scores(
        tags, np.where(p > 0.85, 1 + 5e-7, p), method="confidence_weighted_entropy"),
     ValueError, r"All probabilities are required to be in the interval \[0, 1\] for "
                 r"confidence_weighted_entropy: row 0, class 1 is 1.0000005"),
    (lambda tags, p: dataset.common_multilabel_issues(tags, p, class_names=["a", "b"]), ValueError,
     r"class_names: 2 names for 3 classes"),
])
def test_bad_arguments_are_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call([[1], [0, 2], [2]], PROBS)


def test_float32_stays_float32_without_a_float64_copy():
    import tracemalloc

    rng = np.random.default_rng(3)
    given = rng.random((400_000, 32)) < 0.2
    probs = np.clip(given * 0.6 + rng.random(given.shape) * 0.4, 0, 1).astype(np.float32)
    tracemalloc.start()
    filter.find_label_issues(given, probs)
    rank.get_label_quality_scores(given, probs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # a float64 copy of the matrix alone would be 2x its bytes; chunks of rows are far less
    assert peak < 0.5 * probs.nbytes, f"peak {peak / 2**20:.1f} MiB"
    per_class = filter.find_multilabel_issues_per_class(given[:1000], probs[:1000],
                                                        return_indices_ranked_by="self_confidence")
    assert per_class[2][0].dtype == np.float32


def test_the_package_loads_without_pyspark():
    import subprocess
    import sys

    code = ("import sys; sys.modules['pyspark'] = None\n"
            "import numpy as np\n"
            "from labelqa.multilabel_classification import dataset, filter, rank\n"
            "probs = np.array([[.1, .9, .1], [.4, .1, .9]])\n"
            "mask = filter.find_label_issues([[1], [0, 2]], probs)\n"
            "assert not any(m.startswith('pyspark') and sys.modules[m] is not None"
            " for m in sys.modules)\n"
            "print(mask.tolist())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False, False]"


def test_n_jobs_and_verbose_change_nothing():
    sample = CASES["float32-string-ids"]
    labels = sample.label_lists
    plain = filter.find_label_issues(labels, sample.probs)
    np.testing.assert_array_equal(
        filter.find_label_issues(labels, sample.probs, n_jobs=4, verbose=True), plain)
    np.testing.assert_array_equal(
        filter.find_multilabel_issues_per_class(labels, sample.probs, n_jobs=1, verbose=True),
        filter.find_multilabel_issues_per_class(labels, sample.probs))


def test_inputs_are_not_modified():
    sample = CASES["float64-int-ids"]
    labels = [list(row) for row in sample.label_lists]
    probs = sample.probs.copy()
    filter.find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    rank.get_label_quality_scores(labels, probs, adjust_pred_probs=True)
    dataset.multilabel_health_summary(labels, probs, verbose=False)
    assert labels == sample.label_lists
    np.testing.assert_array_equal(probs, sample.probs)


@pytest.mark.parametrize("module, theirs, name", [
    (filter, cl_filter, "find_label_issues"),
    (filter, cl_filter, "find_multilabel_issues_per_class"),
    (rank, cl_rank, "get_label_quality_scores"),
    (rank, cl_rank, "get_label_quality_scores_per_class"),
    (dataset, cl_dataset, "common_multilabel_issues"),
    (dataset, cl_dataset, "rank_classes_by_multilabel_quality"),
    (dataset, cl_dataset, "overall_multilabel_health_score"),
    (dataset, cl_dataset, "multilabel_health_summary"),
])
def test_signatures_are_cleanlabs(module, theirs, name):
    import inspect

    ours = inspect.signature(getattr(module, name)).parameters
    reference = inspect.signature(getattr(theirs, name)).parameters
    assert list(ours) == list(reference)
    for parameter, expected in reference.items():
        assert ours[parameter].kind == expected.kind, parameter
        default = ours[parameter].default
        # cleanlab's common_multilabel_issues declares `labels=list` (the type, a typo)
        expected_default = None if expected.default is list else expected.default
        assert (dict(default) if isinstance(default, Mapping) else default) == \
            expected_default, parameter

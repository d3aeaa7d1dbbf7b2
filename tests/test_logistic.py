"""The out-of-fold logistic regressions of labelqa predict (labelqa.core.logistic), without
Spark: the same optimum as scikit-learn's LogisticRegression, no label of a fold reaching the
fold's own model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from labelqa.core import logistic as lg


def _data(n=900, d=6, k=3, folds=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 20, d) + rng.normal(size=d) * 5
    logits = (x - x.mean(0)) / x.std(0) @ rng.normal(size=(d, k))
    given = logits + rng.normal(size=(n, k)) > 0.7
    return x, given, rng.integers(0, folds, n)


def _fit(x, given, folds, params):
    models = lg.fit_in_memory(x, given, folds, params)
    return models.held_out(lg.FoldedRows(x, given, folds)), models


def _sklearn(x, given, folds, num_folds, l2):
    xs = StandardScaler().fit_transform(x)
    out = np.zeros(given.shape)
    for fold in range(num_folds):
        train = folds != fold
        for k in range(given.shape[1]):
            model = LogisticRegression(C=1 / (l2 * train.sum()), tol=1e-12, max_iter=10_000)
            model.fit(xs[train], given[train, k])
            out[~train, k] = model.predict_proba(xs[~train])[:, 1]
    return out


@pytest.mark.parametrize("l2", [1e-4, 1e-2])
def test_out_of_fold_probabilities_are_scikit_learns_with_the_same_folds(l2):
    x, given, folds = _data()
    params = lg.LogisticParams(folds=4, l2=l2, tol=1e-9, max_iter=500)
    probs, models = _fit(x, given, folds, params)
    assert models.converged.all()
    np.testing.assert_allclose(probs, _sklearn(x, given, folds, 4, l2), atol=1e-6)


@pytest.mark.parametrize("stacked", [False, True])
def test_no_label_of_a_fold_reaches_the_model_that_predicts_it(stacked):
    x, given, folds = _data(seed=3)
    params = lg.LogisticParams(folds=4, tol=1e-7, max_iter=200, stacked=stacked)
    probs, _ = _fit(x, given, folds, params)
    flipped = given.copy()
    flipped[folds == 2] = ~flipped[folds == 2]  # every label of fold 2 changes
    changed, _ = _fit(x, flipped, folds, params)
    assert np.array_equal(probs[folds == 2], changed[folds == 2])  # bit for bit
    assert np.abs(probs[folds != 2] - changed[folds != 2]).max() > 0.01


def test_standardizer_is_standard_scaling_and_a_constant_feature_is_zeroed():
    x, _, _ = _data()
    x[:, 1] = 7.0
    mean, scale = lg.standardizer(lg.moments(x), True)
    expected = StandardScaler().fit_transform(x)
    np.testing.assert_allclose(lg.design(x, mean, scale)[:, :-1], expected, atol=1e-9)
    assert scale[1] == 0.0
    mean, scale = lg.standardizer(lg.moments(x), False)
    assert np.array_equal(lg.design(x, mean, scale)[:, :-1], x)


def test_moments_of_blocks_add_up_to_the_whole():
    x, _, _ = _data()
    parts = [lg.moments(x[i:i + 100]) for i in range(0, len(x), 100)]
    total = {name: sum(p[name] for p in parts) for name in parts[0]}
    whole = lg.moments(x)
    for name in whole:
        np.testing.assert_allclose(total[name], whole[name], rtol=1e-12)


def test_a_class_on_every_or_no_training_example_stays_finite():
    x, given, folds = _data()
    given[:, 0] = True
    given[:, 1] = False
    probs, models = _fit(x, given, folds, lg.LogisticParams(folds=4))
    assert np.isfinite(probs).all()
    assert probs[:, 0].min() > 0.99 and probs[:, 1].max() < 0.01
    assert models.evaluations <= 100


def test_max_iter_bounds_the_passes():
    x, given, folds = _data()
    _, models = _fit(x, given, folds, lg.LogisticParams(folds=4, tol=1e-14, max_iter=7))
    assert models.evaluations == 7 and not models.converged.any()


def test_quality_sums():
    probs = np.array([[0.9, 0.2], [0.1, 0.6]])
    given = np.array([[True, False], [False, True]])
    sums = lg.quality_sums(probs, given)
    assert sums["positives"].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(sums["log_loss"], [-2 * np.log(0.9), -np.log(0.8) - np.log(0.6)])
    np.testing.assert_allclose(sums["brier"], [0.02, 0.2])


def test_the_nested_first_stage_trains_each_slot_outside_both_of_its_folds():
    folds = np.array([0, 1, 2, 0, 1])
    train = lg.nested_training(folds, 3)
    assert train.shape == (5, 9)
    # slot (f, g) = f * 3 + g: rows in neither fold f nor fold g
    assert train[:, 0 * 3 + 0].tolist() == [False, True, True, False, True]
    assert train[:, 0 * 3 + 1].tolist() == [False, False, True, False, False]
    assert np.array_equal(train[:, 1 * 3 + 2], train[:, 2 * 3 + 1])


def test_the_stacked_stage_uses_the_other_classes_and_never_its_own_first_stage_logit():
    # class 1 is a noisy copy of class 0 that no feature predicts better than class 0 does
    rng = np.random.default_rng(4)
    x, given, folds = _data(n=1500, k=3, folds=5, seed=4)
    given[:, 1] = given[:, 0] & (rng.random(1500) < 0.9)
    params = lg.LogisticParams(folds=5, tol=1e-6, max_iter=200, stacked=True)
    probs, models = _fit(x, given, folds, params)
    assert models.second is not None and len(models.stage_evaluations) == 2
    d = x.shape[1]
    for k in range(3):
        assert np.all(models.second[:, d + k, k] == 0.0)  # its own probability: held at 0
    assert np.abs(models.second[:, d + 0, 1]).min() > 0.1  # class 1 leans on class 0
    assert models.first.shape == (25, d + 1, 3)
    assert np.isfinite(probs).all() and probs.shape == given.shape

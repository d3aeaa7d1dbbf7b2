"""The NumPy core alone (no Spark) against cleanlab 2.9, on many random datasets."""

from __future__ import annotations

import numpy as np
import pytest

from labelqa.config import FILTERS, PRUNE_FILTERS, IssuesConfig, ScoringConfig
from labelqa.core.joint import round_preserving_sum
from labelqa.core.local import audit_in_memory
from labelqa.core.scores import exponential_moving_average
from labelqa.core.thresholds import limb_sums
from labelqa.sample import generate
from tests import oracle

SEEDS = range(12)


def _sample(seed: int):
    rng = np.random.default_rng(1000 + seed)
    num_classes = int(rng.choice([2, 3, 5, 9, 17]))
    dtype = np.float32 if seed % 2 else np.float64
    return generate(int(rng.integers(200, 900)), num_classes, seed, dtype=dtype,
                    missing_rate=float(rng.uniform(0.01, 0.1)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("filter_by", FILTERS)
def test_flags_equal_cleanlab(seed, filter_by):
    sample = _sample(seed)
    issues = IssuesConfig(filter_by=filter_by)
    plan, result = audit_in_memory(sample.ids, sample.given, sample.probs, issues=issues)
    ref = oracle.reference(sample, ScoringConfig(), issues)
    np.testing.assert_array_equal(result.class_flags, ref.class_flags)
    np.testing.assert_array_equal(result.is_label_issue, ref.is_label_issue)
    np.testing.assert_array_equal(result.label_quality_score, ref.label_quality_score)


@pytest.mark.parametrize("seed", SEEDS)
def test_prune_options_equal_cleanlab(seed):
    sample = _sample(seed)
    num_classes = sample.given.shape[1]
    rng = np.random.default_rng(seed)
    for filter_by in PRUNE_FILTERS:
        for issues in (IssuesConfig(filter_by, frac_noise=float(rng.uniform(0.2, 0.9))),
                       IssuesConfig(filter_by, min_examples_per_class=int(rng.integers(2, 200))),
                       IssuesConfig(filter_by, num_to_remove_per_class=tuple(
                           int(n) for n in rng.integers(0, 12, num_classes)))):
            _, result = audit_in_memory(sample.ids, sample.given, sample.probs, issues=issues)
            ref = oracle.reference(sample, ScoringConfig(), issues)
            np.testing.assert_array_equal(result.class_flags, ref.class_flags, err_msg=str(issues))


@pytest.mark.parametrize("seed", SEEDS)
def test_thresholds_and_joint_equal_cleanlab(seed):
    sample = _sample(seed)
    plan, _ = audit_in_memory(sample.ids, sample.given, sample.probs)
    rtol = 3e-7 if sample.probs.dtype == np.float32 else 4e-16
    np.testing.assert_allclose(plan.thresholds.as_pairs(), oracle.thresholds(sample), rtol=rtol)
    np.testing.assert_array_equal(plan.calibrated_joint, oracle.confident_joint(sample))


@pytest.mark.parametrize("method", ["self_confidence", "normalized_margin",
                                    "confidence_weighted_entropy"])
@pytest.mark.parametrize("aggregator", ["exponential_moving_average", "softmin"])
@pytest.mark.parametrize("adjust", [False, True])
def test_scores_equal_cleanlab(method, aggregator, adjust):
    if adjust and method == "confidence_weighted_entropy":
        pytest.skip("not a valid combination (cleanlab raises too)")
    for seed in (0, 2, 4):  # float64: bit-exact or within an ulp-level tolerance
        sample = _sample(seed)
        scoring = ScoringConfig(method=method, aggregator=aggregator, adjust_pred_probs=adjust,
                                alpha=0.7, temperature=0.2)
        _, result = audit_in_memory(sample.ids, sample.given, sample.probs, scoring=scoring)
        ref = oracle.reference(sample, scoring, IssuesConfig())
        exact = aggregator == "exponential_moving_average" and not adjust and \
            method != "confidence_weighted_entropy"
        if exact:
            np.testing.assert_array_equal(result.label_quality_score, ref.label_quality_score)
        else:
            np.testing.assert_allclose(result.label_quality_score, ref.label_quality_score,
                                       rtol=0, atol=1e-12)
        np.testing.assert_allclose(result.class_scores, ref.class_scores, rtol=0, atol=1e-12)


def test_ema_weighs_the_worst_class_most():
    scores = np.array([[0.9, 0.1, 0.5]])
    # sorted descending 0.9, 0.5, 0.1: e = 0.8*0.5 + 0.2*0.9 = 0.58; 0.8*0.1 + 0.2*0.58
    expected = 0.8 * 0.1 + (1 - 0.8) * (0.8 * 0.5 + (1 - 0.8) * 0.9)
    assert exponential_moving_average(scores, 0.8)[0] == expected


def test_spec_example_scores():
    given = np.array([[0, 1, 0], [1, 0, 1]], dtype=bool)
    probs = np.array([[0.1, 0.9, 0.1], [0.4, 0.1, 0.9]])
    _, result = audit_in_memory(np.array([1, 2]), given, probs)
    np.testing.assert_allclose(result.label_quality_score, [0.9, 0.5])


def test_limb_sums_are_exact_and_order_free():
    rng = np.random.default_rng(3)
    values = rng.random((10_000, 3))
    include = rng.random((10_000, 3)) < 0.5
    whole = limb_sums(values, include)
    halves = limb_sums(values[:3333], include[:3333]) + limb_sums(values[3333:], include[3333:])
    np.testing.assert_array_equal(whole, halves)
    from fractions import Fraction

    from labelqa.core.thresholds import exact_total
    expected = [sum((Fraction(v) for v in values[include[:, k], k]), Fraction(0))
                for k in range(3)]
    assert exact_total(whole) == expected


def test_round_preserving_sum_keeps_the_total():
    # half to even gives [0, 2, 2, 0] (sum 4, target 5); the +1 goes to the largest residual,
    # the last of the tied ones in argsort order
    np.testing.assert_array_equal(round_preserving_sum(np.array([0.5, 1.5, 2.5, 0.5])),
                                  [0.0, 2.0, 2.0, 1.0])
    assert round_preserving_sum(np.array([2.4, 2.4, 2.2])).sum() == 7


def test_side_limb_sums_are_exact_for_float32_with_the_slack_values():
    from fractions import Fraction

    from labelqa.core.thresholds import exact_total, side_limb_sums
    rng = np.random.default_rng(4)
    values = rng.random((5000, 2)).astype(np.float32)
    values[:3] = np.array([[-5e-7, 1.0000005], [2.0**-37, 1.0], [0.0, 1e-7]], np.float32)
    side = rng.random((5000, 2)) < 0.3
    on_side, off_side = side_limb_sums(values, side)
    for limbs, chosen in ((on_side, side), (off_side, ~side)):
        expected = [sum((Fraction(float(v)) for v in values[chosen[:, k], k]), Fraction(0))
                    for k in range(2)]
        assert exact_total(limbs) == expected


def test_rank_ranges_hold_fewer_rows_the_more_classes_a_row_has():
    from labelqa.spark.ranking import range_rows
    assert [range_rows(k) for k in (1, 40, 41, 1000, 4000, 10_000)] == [
        200_000, 200_000, 195_121, 8_000, 2_000, 1_000]


def test_issue_ranks_by_range_equal_one_global_sort_by_score_then_id():
    from labelqa.spark.ranking import RankRanges, rank_bins, ranks_within
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(20_000) ** 3, 3)  # many ties
    ids = rng.permutation(20_000).astype(np.int64)
    ranges = RankRanges.of(np.bincount(rank_bins(scores), minlength=4096), rows_per_range=900)
    assert ranges.count > 10
    of_row = ranges.ranges(scores)
    ranks = np.zeros(len(scores), dtype=np.int64)
    for number in range(ranges.count):
        members = np.flatnonzero(of_row == number)
        ranks[members] = ranks_within(scores[members], ids[members], ranges.offsets[number])
    expected = np.empty(len(scores), dtype=np.int64)
    expected[np.lexsort((ids, scores))] = np.arange(1, len(scores) + 1)
    np.testing.assert_array_equal(ranks, expected)

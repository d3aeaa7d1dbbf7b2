"""The Wilson score interval against published values and its edge cases."""

import numpy as np
import pytest

from labelqa.core.intervals import wilson_interval


def test_wilson_interval_matches_the_published_values():
    # Newcombe (1998), table I: 0/10, 1/10, 3/10, 10/10 and 81/263
    low, high = wilson_interval(np.array([0, 1, 3, 10, 81]), np.array([10, 10, 10, 10, 263]))
    np.testing.assert_allclose(low, [0.0, 0.01787, 0.10779, 0.72247, 0.25529], atol=5e-5)
    np.testing.assert_allclose(high, [0.27753, 0.40415, 0.60322, 1.0, 0.36621], atol=5e-5)


def test_wilson_interval_without_trials_is_nan():
    low, high = wilson_interval(np.array([0, 2]), np.array([0, 4]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert 0 < low[1] < 0.5 < high[1] < 1


def test_wilson_interval_refuses_more_successes_than_trials():
    with pytest.raises(ValueError, match="between 0 and trials"):
        wilson_interval(np.array([3]), np.array([2]))

"""Constants of cleanlab 2.9's multi-label algorithms (spec section 0)."""

from __future__ import annotations

#: Slack of every threshold comparison and of the near-tie rule.
FLOATING_POINT_COMPARISON = 1e-6
#: Lower clip of a confident threshold.
THRESHOLD_FLOOR = 2e-6
#: Threshold of a binary side that has no examples.
ABSENT_SIDE_THRESHOLD = 2.0
#: Division guard of the calibration.
TINY = 1e-100
#: Clip of the confidence-weighted entropy.
SCORE_FLOOR = 1e-6
#: Lower bound of the softmin temperature.
TEMPERATURE_FLOOR = 1e-6
#: EMA weight used wherever cleanlab does not let the caller choose (the low_* filters).
DEFAULT_ALPHA = 0.8

"""The parameters of one audit, as the core takes them.

The core defines them so that it depends on nothing above it; `labelqa.config` builds them
from YAML (`scoring` and `issues` sections, its `ScoringConfig` and `IssuesConfig`) and
checks their ranges, and the notebook API builds them from cleanlab's arguments. The field
annotations are the config's key types: its loader reads them (`labelqa.config._typed`).
"""

from __future__ import annotations

from dataclasses import dataclass

from labelqa.core.filters import Filter, filter_named


@dataclass(frozen=True)
class ScoringParams:
    """How each (example, class) annotation is scored and the scores of an example combined."""

    method: str = "self_confidence"
    adjust_pred_probs: bool = False
    aggregator: str = "exponential_moving_average"
    alpha: float = 0.8
    temperature: float = 0.1


@dataclass(frozen=True)
class IssuesParams:
    """Which annotations are flagged: the filter and its arguments."""

    filter_by: str = "prune_by_noise_rate"
    frac_noise: float = 1.0
    min_examples_per_class: int = 1
    num_to_remove_per_class: tuple[int, ...] | None = None

    @property
    def filter(self) -> Filter:
        """The definition of `filter_by` (ValueError for a name that is not a filter)."""
        return filter_named(self.filter_by)

"""What each `issues.filter_by` means, in one place: one `Filter` per name (cleanlab 2.9's
multi-label filters), chosen once by name (`filter_named`).

A filter says which classes it can judge (`notes`), which exact selections it needs
(`selections`, see labelqa.core.flags), how its flags combine into the per-class flags
(`class_flags`) and the per-example verdict (`is_issue`), and which of cleanlab's arguments
it takes (`prunes`, `estimates_joint`). The steps of labelqa.core.plan ask it at each point;
the config and the notebook API check arguments against it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, cast

import numpy as np

from labelqa.core import flags as fl
from labelqa.core.arrays import Ints, Mask
from labelqa.core.batch import Batch
from labelqa.core.joint import PruneQuotas, confident_guess
from labelqa.core.thresholds import ConfidentThresholds

#: per selection kind, what `audit_batch` selected: (n, K) pairs, or (n,) rows for LOW_ROWS
Selected = Mapping[str, Mask]


def judged_mask(notes: Sequence[str | None]) -> Mask:
    """(K,): the classes judged, those without a note (see `Filter.notes`)."""
    return np.array([note is None for note in notes], dtype=bool)


@dataclass(frozen=True)
class Filter(ABC):
    """One value of `issues.filter_by`."""

    name: str

    #: takes frac_noise, num_to_remove_per_class and a user's confident joint (cleanlab's
    #: prune family: its quotas come from the calibrated joint)
    prunes: ClassVar[bool] = False
    #: its flags are the off-diagonal of the joint estimated from the rows, so a user's joint
    #: is ignored, with cleanlab's warning
    estimates_joint: ClassVar[bool] = False
    #: can judge a class annotated on no example (cleanlab raises for it otherwise)
    judges_one_sided: ClassVar[bool] = True
    #: flags whole examples by a ranking of their own (LOW_ROWS), not as "has a flagged class"
    ranks_examples: ClassVar[bool] = False

    def notes(self, num_given: Ints, num_rows: int, *,
              examples_only: bool = False) -> tuple[str | None, ...]:
        """Why each class is not judged (None: it is judged).

        cleanlab raises for such a class and aborts the whole call; labelqa judges the others.
        `examples_only`: only the per-example verdicts are wanted (cleanlab's
        `find_label_issues`); a filter that ranks whole examples judges a one-sided class there.
        """
        one_sided_fails = not (self.judges_one_sided or (examples_only and self.ranks_examples))
        notes: list[str | None] = []
        for count in num_given:
            if count == num_rows:
                notes.append("annotated on every example: with no example lacking it there is "
                             "nothing to compare against; not judged")
            elif count == 0 and one_sided_fails:
                notes.append(f"annotated on no example: filter_by={self.name} cannot judge a "
                             "class with one side only; not judged")
            else:
                notes.append(None)
        return tuple(notes)

    def judged(self, num_given: Ints, num_rows: int) -> Mask:
        """(K,): the classes this filter judges."""
        return judged_mask(self.notes(num_given, num_rows))

    def selections(self, judged: Mask, prune: PruneQuotas, cl_flags: Ints,
                   cl_rows: Ints) -> tuple[fl.Selection, ...]:
        """The exact selections the filter's flags come from, with their quotas: the prune
        quotas per class and side, the confident-learning flags per class (`cl_flags`) and
        the examples with one (`cl_rows`, shape (1,))."""
        return ()

    @abstractmethod
    def class_flags(self, batch: Batch, thresholds: ConfidentThresholds, selected: Selected,
                    judged: Mask) -> Mask:
        """(n, K): the flagged annotations of a batch."""

    def is_issue(self, class_flags: Mask, selected: Selected) -> Mask:
        """(n,): the flagged examples."""
        return cast(Mask, class_flags.any(axis=1))  # an array: the flags are (n, K)


@dataclass(frozen=True)
class PruneFilter(Filter):
    """prune_by_noise_rate, prune_by_class, both: the pairs each of `kinds` selects, all of
    them (`both` flags what both select)."""

    kinds: tuple[str, ...]

    prunes: ClassVar[bool] = True

    def selections(self, judged: Mask, prune: PruneQuotas, cl_flags: Ints,
                   cl_rows: Ints) -> tuple[fl.Selection, ...]:
        sides = (prune.side_enabled & judged[:, None]).reshape(-1)
        quotas = {fl.NOISE_RATE: prune.noise_rate, fl.BY_CLASS: prune.by_class}
        return tuple(fl.Selection(kind, sides, quotas[kind].reshape(-1)) for kind in self.kinds)

    def class_flags(self, batch: Batch, thresholds: ConfidentThresholds, selected: Selected,
                    judged: Mask) -> Mask:
        flags = selected[self.kinds[0]]
        for kind in self.kinds[1:]:
            flags = flags & selected[kind]
        return flags


@dataclass(frozen=True)
class ConfidentLearningFilter(Filter):
    """confident_learning: the confident joint's off-diagonal pairs, minus near-ties."""

    estimates_joint: ClassVar[bool] = True

    def class_flags(self, batch: Batch, thresholds: ConfidentThresholds, selected: Selected,
                    judged: Mask) -> Mask:
        counted, guess = confident_guess(batch, *thresholds.cut_points())
        return fl.confident_learning_flags(batch, counted, guess) & judged[None, :]


@dataclass(frozen=True)
class DisagreementFilter(Filter):
    """predicted_neq_given: every pair where the model disagrees with the annotation."""

    judges_one_sided: ClassVar[bool] = False

    def class_flags(self, batch: Batch, thresholds: ConfidentThresholds, selected: Selected,
                    judged: Mask) -> Mask:
        return fl.disagreements(batch) & judged[None, :]


@dataclass(frozen=True)
class LowScoreFilter(Filter):
    """low_self_confidence, low_normalized_margin: per class, as many of the lowest-scoring
    pairs (by `method`) as confident learning flags; per example, as many of the
    lowest-scoring examples as confident learning flags."""

    method: str

    judges_one_sided: ClassVar[bool] = False
    ranks_examples: ClassVar[bool] = True

    def selections(self, judged: Mask, prune: PruneQuotas, cl_flags: Ints,
                   cl_rows: Ints) -> tuple[fl.Selection, ...]:
        return (fl.Selection(fl.LOW_CLASS, judged, cl_flags, self.method),
                fl.Selection(fl.LOW_ROWS, np.array([True]), cl_rows))

    def class_flags(self, batch: Batch, thresholds: ConfidentThresholds, selected: Selected,
                    judged: Mask) -> Mask:
        return selected[fl.LOW_CLASS]

    def is_issue(self, class_flags: Mask, selected: Selected) -> Mask:
        return selected[fl.LOW_ROWS]


_DEFINITIONS: tuple[Filter, ...] = (
    PruneFilter("prune_by_noise_rate", (fl.NOISE_RATE,)),
    PruneFilter("prune_by_class", (fl.BY_CLASS,)),
    PruneFilter("both", (fl.NOISE_RATE, fl.BY_CLASS)),
    ConfidentLearningFilter("confident_learning"),
    DisagreementFilter("predicted_neq_given"),
    LowScoreFilter("low_self_confidence", "self_confidence"),
    LowScoreFilter("low_normalized_margin", "normalized_margin"),
)
#: every filter by name, in the contract's order
REGISTRY: Mapping[str, Filter] = MappingProxyType({f.name: f for f in _DEFINITIONS})
FILTERS = tuple(REGISTRY)
PRUNE_FILTERS = tuple(f.name for f in _DEFINITIONS if f.prunes)
LOW_FILTERS = tuple(f.name for f in _DEFINITIONS if f.ranks_examples)


def filter_named(name: str) -> Filter:
    """The definition of filter `name` (the callers check the name with their own message)."""
    chosen = REGISTRY.get(name)
    if chosen is None:
        raise ValueError(f"unknown filter {name!r}; expected one of {', '.join(FILTERS)}")
    return chosen

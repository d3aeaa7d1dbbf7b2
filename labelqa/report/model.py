"""What the report shows: small, plain values read from the output tables (K-sized, plus the
few worst examples), so that rendering needs no Spark and tests can compare numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from labelqa.record import Comparison
from labelqa.record import NoiseChange as NoiseChange  # the report shows it too


@dataclass(frozen=True)
class ClassRow:
    """One row of the `classes` table."""

    class_index: int
    class_name: str
    num_given: int
    threshold_given: float
    threshold_not_given: float
    cj_given_given: int
    cj_given_not: int
    cj_not_given: int
    cj_not_not: int
    label_issues: int
    inverse_label_issues: int
    label_noise: float
    inverse_label_noise: float
    label_quality_score: float
    note: str | None = None
    separation_auc: float | None = None  # None: one side is empty, or a run before it existed


@dataclass(frozen=True)
class ScoreHistogram:
    """`label_quality_score` counts in equal-width bins over [0, 1]: flagged and not flagged.

    `edges` has one more element than the count lists. `cutoff` is the highest score of a
    flagged example (None when nothing is flagged).
    """

    edges: tuple[float, ...]
    flagged: tuple[int, ...]
    not_flagged: tuple[int, ...]
    cutoff: float | None


@dataclass(frozen=True)
class WorstExample:
    issue_rank: int
    id: str
    label_quality_score: float
    given: tuple[str, ...]
    suggested: tuple[str, ...]
    explanation: str


@dataclass(frozen=True)
class Change(Comparison):
    """This run against the dataset's previous run date (all None without one): the run
    history's comparison, and which examples' flags changed."""

    new_issues: int | None = None  # flagged now, not flagged (or absent) in the previous run
    resolved_issues: int | None = None  # flagged in the previous run, not flagged now


@dataclass(frozen=True)
class AnnotatorRow:
    """An annotator whose flagged-tag rate stands out (its interval above the pooled rate)."""

    annotator: str | None
    examples_tagged: int
    tags_given: int
    flagged_extraneous: int
    extraneous_rate: float | None
    extraneous_rate_low: float | None
    extraneous_rate_high: float | None
    extraneous_ratio: float | None
    extraneous_stands_out: bool | None
    flagged_missing: int
    missing_rate: float | None
    missing_rate_low: float | None
    missing_rate_high: float | None
    missing_ratio: float | None
    missing_stands_out: bool | None


@dataclass(frozen=True)
class Annotators:
    """The run's `annotators` table, summarised (None on ReportData: no annotator column)."""

    count: int  # annotators in the table
    pooled_extraneous_rate: float | None
    pooled_missing_rate: float | None
    standing_out: tuple[AnnotatorRow, ...]  # most above the pooled rate first, at most `limit`
    more: int = 0  # standing out, not listed


@dataclass(frozen=True)
class PrecisionRow:
    """One row of the `review_precision` table."""

    scope: str  # overall | class | decile
    key: str | None  # None | class name | "1".."10"
    reviewed: int
    confirmed: int
    precision: float | None  # None: no reviewed pair
    precision_low: float | None
    precision_high: float | None


@dataclass(frozen=True)
class Reviews:
    """Reviewers' verdicts on the run's findings (`labelqa reviews`)."""

    confirmed: int
    rejected: int
    corrected: int  # tags reviewers changed that labelqa did not flag (not in precision)
    precision: tuple[PrecisionRow, ...]  # overall first, then per class, per decile


@dataclass(frozen=True)
class ReportData:
    dataset: str
    run_date: str
    run_id: str | None
    status: str | None
    generated_at: str  # ISO timestamp, passed in
    num_examples: int
    num_classes: int
    num_label_issues: int
    overall_health_score: float
    filter_by: str
    scoring_method: str
    rows_quarantined: int
    classes: tuple[ClassRow, ...]
    histogram: ScoreHistogram
    worst: tuple[WorstExample, ...]
    change: Change = field(default_factory=Change)
    separation_auc: float | None = None  # summary.separation_auc (mean over the classes)
    annotators: Annotators | None = None
    reviews: Reviews | None = None  # None: no verdicts on this run

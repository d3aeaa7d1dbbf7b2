"""The facts of one audit run, built once and projected into each output that states them:
the `summary` row, the `runs` row, the manifest, and the report a caller gets back.

Plain values only (no Spark objects), so that the projections are tested without a session.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceCounts:
    """What became of one input table's rows: rows in = audited + quarantined + collapsed."""

    rows: int
    audited: int
    quarantined: int
    collapsed: int
    reasons: dict[str, int]
    repeated_tags: int = 0


@dataclass(frozen=True)
class NoiseChange:
    """How one class's label noise moved against the previous run."""

    class_name: str
    label_noise: float
    previous_label_noise: float
    change: float
    inverse_label_noise: float  # forgotten tags: most annotation errors
    previous_inverse_label_noise: float
    inverse_change: float


@dataclass(frozen=True)
class Comparison:
    """This run against the dataset's previous run still in the tables (all None without
    one): the run history's columns, the manifest's `comparison`, the report's change."""

    previous_run_date: str | None = None
    previous_health_score: float | None = None
    previous_num_label_issues: int | None = None
    class_noise_changes: tuple[NoiseChange, ...] = ()
    previous_run_id: str | None = None

    def describe(self, health: float, issues: int, run_date: str | None = None) -> str:
        if self.previous_run_date is None:
            return "no previous run of this dataset to compare with"
        moved = ", ".join(f"{c.class_name} {c.change:+.4f} (inverse {c.inverse_change:+.4f})"
                          for c in self.class_noise_changes) or "none"
        which = (f"the run of {self.previous_run_date} this rerun replaces"
                 if self.previous_run_date == run_date else self.previous_run_date)
        previous_health = self.previous_health_score or 0.0
        previous_issues = self.previous_num_label_issues or 0
        return (f"compared with {which}: health "
                f"{previous_health:.4f} -> {health:.4f} "
                f"({health - previous_health:+.4f}), label issues "
                f"{previous_issues} -> {issues} "
                f"({issues - previous_issues:+d}); label noise (inverse: "
                f"forgotten tags) moved most: {moved}")


@dataclass(frozen=True)
class RunRecord:
    """One audit run: who, when, what came in, what was found, what was written."""

    output: str
    dataset: str
    run_date: str
    run_id: str
    status: str  # succeeded | gate_failed
    gates_failed: tuple[str, ...]
    num_examples: int
    num_classes: int
    num_label_issues: int
    overall_health_score: float
    labels: SourceCounts
    predictions: SourceCounts
    separation_auc: float | None  # mean over the classes with both sides
    weak_separation_classes: int
    separation_warning: str | None  # the model separates the tags weakly
    comparison: Comparison
    filter_by: str
    config_json: str  # the effective configuration (`AuditConfig.to_json`: secrets redacted)
    inputs: Mapping[str, str]  # what was read, credentials redacted
    outputs: Mapping[str, str]  # table -> its partition's directory
    manifest: str  # the manifest's path
    labelqa_version: str
    spark_version: str
    started_at: dt.datetime
    finished_at: dt.datetime
    stages_seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def comparison_text(self) -> str:
        return self.comparison.describe(self.overall_health_score, self.num_label_issues,
                                        self.run_date)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        """Quarantined rows per `source.reason`."""
        return {f"{source}.{reason}": n
                for source, counts in (("labels", self.labels),
                                       ("predictions", self.predictions))
                for reason, n in counts.reasons.items()}

    def summary_row(self) -> dict[str, Any]:
        """The `summary` table's row (`labelqa.tables.SUMMARY`)."""
        return {
            "run_id": self.run_id, "num_examples": self.num_examples,
            "num_classes": self.num_classes, "num_label_issues": self.num_label_issues,
            "overall_health_score": self.overall_health_score,
            **{f"{source}_{state}": getattr(counts, state)
               for source, counts in (("labels", self.labels),
                                      ("predictions", self.predictions))
               for state in ("rows", "audited", "quarantined", "collapsed")},
            "repeated_tags_collapsed": self.labels.repeated_tags,
            "separation_auc": self.separation_auc,
            "weak_separation_classes": self.weak_separation_classes,
            "quarantined_by_reason": self.quarantined_by_reason,
            "filter_by": self.filter_by,
            "config_json": self.config_json,
            "labelqa_version": self.labelqa_version, "spark_version": self.spark_version,
            "started_at": self.started_at, "finished_at": self.finished_at,
        }

    def runs_row(self) -> dict[str, Any]:
        """The `runs` table's row (`labelqa.tables.RUNS_SCHEMA`; the review columns are set
        later, by `labelqa reviews`)."""
        c = self.comparison
        return {
            "run_id": self.run_id, "run_date": self.run_date, "status": self.status,
            "num_examples": self.num_examples, "num_classes": self.num_classes,
            "num_label_issues": self.num_label_issues,
            "overall_health_score": self.overall_health_score,
            "gates_failed": list(self.gates_failed),
            "previous_run_date": c.previous_run_date,
            "previous_health_score": c.previous_health_score,
            "previous_num_label_issues": c.previous_num_label_issues,
            "class_noise_changes": [dataclasses.asdict(n) for n in c.class_noise_changes],
            "started_at": self.started_at, "finished_at": self.finished_at,
            "reviewed_pairs": None, "confirmed_pairs": None, "review_precision": None,
        }

    def manifest_document(self) -> dict[str, Any]:
        """The manifest's JSON document (the contract: `_manifest.json`)."""
        return {
            "run_id": self.run_id, "status": self.status,
            "gates_failed": list(self.gates_failed), "dataset": self.dataset,
            "run_date": self.run_date, "config": json.loads(self.config_json),
            "inputs": dict(self.inputs),
            "rows": {"labels": dataclasses.asdict(self.labels),
                     "predictions": dataclasses.asdict(self.predictions),
                     "audited_examples": self.num_examples,
                     "label_issues": self.num_label_issues},
            "outputs": dict(self.outputs),
            "comparison": dataclasses.asdict(self.comparison),
            "versions": {"labelqa": self.labelqa_version, "spark": self.spark_version},
            "timings": {"started_at": self.started_at.isoformat(),
                        "finished_at": self.finished_at.isoformat(),
                        "stages_seconds": dict(self.stages_seconds)},
        }

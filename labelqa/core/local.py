"""The whole audit on in-memory NumPy arrays: the reference engine and the one-process floor.

It runs the same steps as the Spark engine on a single batch, and finds each selection's cut
with a plain sort. Use it for data that fits in memory, and in tests.
"""

from __future__ import annotations

import numpy as np

from labelqa.config import IssuesConfig, ScoringConfig
from labelqa.core.batch import Batch
from labelqa.core.flags import exact_cut
from labelqa.core.plan import (
    AuditPlan,
    BatchResult,
    audit_batch,
    class_notes,
    joint_partials,
    plan_from,
    threshold_partials,
    thresholds_from,
)


def audit_in_memory(ids: np.ndarray, given: np.ndarray, probs: np.ndarray,
                    scoring: ScoringConfig = ScoringConfig(),
                    issues: IssuesConfig = IssuesConfig()) -> tuple[AuditPlan, BatchResult]:
    batch = Batch(np.asarray(ids), np.asarray(given, dtype=bool), np.asarray(probs))
    num_rows = batch.num_rows
    partials = threshold_partials(batch)
    thresholds = thresholds_from(partials, num_rows, batch.probs.dtype == np.float32)
    notes = class_notes(partials["num_given"], num_rows, issues.filter_by)
    judged = np.array([note is None for note in notes])
    totals = joint_partials(batch, thresholds, judged)
    plan = plan_from(num_rows, thresholds, partials["num_given"], totals, scoring, issues)
    cuts = {s.name: exact_cut(s.pairs(batch), batch.ids, s.quotas) for s in plan.selections}
    return plan, audit_batch(batch, plan, cuts)

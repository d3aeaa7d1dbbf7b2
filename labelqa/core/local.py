"""The whole audit on in-memory NumPy arrays as one `BatchResult`: the reference the Spark
engine's tests compare with (`labelqa.core.matrix` does the work)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from labelqa.core.matrix import audit_matrix
from labelqa.core.params import IssuesParams, ScoringParams
from labelqa.core.plan import AuditPlan, BatchResult


def audit_in_memory(ids: ArrayLike, given: ArrayLike, probs: ArrayLike,
                    scoring: ScoringParams = ScoringParams(),
                    issues: IssuesParams = IssuesParams()) -> tuple[AuditPlan, BatchResult]:
    audit = audit_matrix(np.asarray(ids), np.asarray(given, dtype=bool), np.asarray(probs),
                         scoring, issues, keep_class_scores=True)
    assert audit.class_flags is not None and audit.class_scores is not None
    return audit.plan, BatchResult(audit.label_quality_score, audit.is_label_issue,
                                   audit.class_flags, audit.class_scores)

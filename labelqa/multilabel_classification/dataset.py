"""Dataset-level summaries of multi-label label quality: cleanlab 2.9's
`cleanlab.multilabel_classification.dataset`, same names, parameters, defaults and returns
(pandas DataFrames with cleanlab's column names).

All of them use the default filter (`prune_by_noise_rate`), as cleanlab's do. Differences
on purpose: counts are exact (cleanlab computes `int(c / N * N)`, one less than `c` for some
`c`); rows with equal sort values keep class order (cleanlab's sort leaves their order
undefined); `labels` and `pred_probs` are required.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labelqa.core.params import IssuesParams
from labelqa.core.summaries import ClassQuality, class_quality, health_score
from labelqa.multilabel_classification import _audit
from labelqa.multilabel_classification._inputs import inputs


@dataclass(frozen=True)
class _Findings:
    quality: ClassQuality
    num_label_issues: int


def _findings(given: np.ndarray, probs: np.ndarray, confident_joint: Any) -> _Findings:
    issues = IssuesParams()
    joint = _audit.joint_argument(confident_joint, issues.filter, probs.shape[1])
    _audit.require_judgeable(given, issues.filter, per_class=True)
    result = _audit.run(given, probs, issues, calibrated_joint=joint, keep_class_flags=True)
    assert result.class_flags is not None
    return _Findings(class_quality(result.class_flags, given), int(result.is_label_issue.sum()))


def _names(class_names: Any, num_classes: int) -> list[str] | None:
    if class_names is None:
        return None
    names = list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"class_names: {len(names)} names for {num_classes} classes "
                         f"(pred_probs columns)")
    return names


def _with_names(table: dict[str, Any], names: list[str] | None, index: np.ndarray
                ) -> pd.DataFrame:
    if names is not None:
        table = {"Class Name": [names[k] for k in index], **table}
    return pd.DataFrame(table)


def _common_issues(findings: _Findings, names: list[str] | None) -> pd.DataFrame:
    quality = findings.quality
    num_classes = len(quality.label_issues)
    index = np.repeat(np.arange(num_classes), 2)
    in_given = np.tile([True, False], num_classes)
    counts = np.stack([quality.label_issues, quality.inverse_label_issues], axis=1).reshape(-1)
    table = _with_names({"Class Index": index, "In Given Label": in_given,
                         "In Suggested Label": ~in_given, "Num Examples": counts,
                         "Issue Probability": counts / quality.num_rows}, names, index)
    return table.sort_values("Issue Probability", ascending=False, kind="stable"
                             ).reset_index(drop=True)


def _class_ranking(findings: _Findings, names: list[str] | None) -> pd.DataFrame:
    quality = findings.quality
    index = np.arange(len(quality.label_issues))
    table = _with_names({"Class Index": index, "Label Issues": quality.label_issues,
                         "Inverse Label Issues": quality.inverse_label_issues,
                         "Label Noise": quality.label_noise,
                         "Inverse Label Noise": quality.inverse_label_noise,
                         "Label Quality Score": quality.label_quality_score}, names, index)
    return table.sort_values("Label Quality Score", kind="stable").reset_index(drop=True)


def common_multilabel_issues(labels: Any = None, pred_probs: Any = None, *,
                             class_names: Any = None, confident_joint: Any = None
                             ) -> pd.DataFrame:
    """Two rows per class: how many examples are annotated with it but should not be
    (`In Given Label` True) and how many miss it (`In Suggested Label` True), as `Num
    Examples` and `Issue Probability` (of all N examples); most frequent first."""
    given, probs = inputs(labels, pred_probs)
    names = _names(class_names, probs.shape[1])
    return _common_issues(_findings(given, probs, confident_joint), names)


def rank_classes_by_multilabel_quality(labels: Any = None, pred_probs: Any = None, *,
                                       class_names: Any = None, joint: Any = None,
                                       confident_joint: Any = None) -> pd.DataFrame:
    """One row per class, worst first: `Label Issues` (flagged examples annotated with the
    class), `Inverse Label Issues` (flagged examples missing it), both also as fractions of
    N (`Label Noise`, `Inverse Label Noise`), and `Label Quality Score` = 1 - Label Noise.

    As in cleanlab, `joint` (a (K, 2, 2) confident joint) is the one the detection uses;
    `confident_joint` is accepted and unused here (cleanlab only takes N from it when
    `labels` is missing, and labels are required here).
    """
    given, probs = inputs(labels, pred_probs)
    names = _names(class_names, probs.shape[1])
    return _class_ranking(_findings(given, probs, joint), names)


def overall_multilabel_health_score(labels: Any = None, pred_probs: Any = None, *,
                                    confident_joint: Any = None) -> float:
    """The fraction of examples with no label issue in any class (default filter)."""
    given, probs = inputs(labels, pred_probs)
    findings = _findings(given, probs, confident_joint)
    return health_score(findings.num_label_issues, len(given))


def multilabel_health_summary(labels: Any = None, pred_probs: Any = None, *,
                              class_names: Any = None, num_examples: int | None = None,
                              confident_joint: Any = None, verbose: bool = True
                              ) -> dict[str, Any]:
    """`{"overall_multilabel_health_score", "classes_by_multilabel_quality",
    "common_multilabel_issues"}`, printed unless `verbose=False`.

    As in cleanlab, the class ranking is computed without `confident_joint` (cleanlab passes
    it where the ranking only reads N) and the other two with it. `num_examples` only changes
    the printed header.
    """
    given, probs = inputs(labels, pred_probs)
    names = _names(class_names, probs.shape[1])
    with_joint = _findings(given, probs, confident_joint)
    without_joint = (with_joint if confident_joint is None
                     else _findings(given, probs, None))
    summary = {
        "overall_multilabel_health_score": health_score(with_joint.num_label_issues,
                                                        len(given)),
        "classes_by_multilabel_quality": _class_ranking(without_joint, names),
        "common_multilabel_issues": _common_issues(with_joint, names),
    }
    if verbose:
        count = len(given) if num_examples is None else num_examples
        print(f"Multi-label dataset health summary for {count:,} examples "
              f"(labelqa, cleanlab's method)\n")
        print("Classes by label quality (worst first):")
        print(summary["classes_by_multilabel_quality"].to_string(index=False))
        print("\nCommon multi-label issues:")
        print(summary["common_multilabel_issues"].to_string(index=False))
        print(f"\nOverall multi-label health score: "
              f"{summary['overall_multilabel_health_score']:.4f}")
    return summary

"""cleanlab 2.9's multi-label API without Spark: `filter`, `rank` and `dataset`, with the same
function names, parameters, defaults and return types, on labelqa's NumPy core (Apache-2.0).

    from labelqa.multilabel_classification.filter import find_label_issues
    from labelqa.multilabel_classification.rank import get_label_quality_scores

Nothing here imports Spark.
"""

from labelqa.multilabel_classification import dataset, filter, rank
from labelqa.multilabel_classification.rank import get_label_quality_scores

__all__ = ["dataset", "filter", "rank", "get_label_quality_scores"]

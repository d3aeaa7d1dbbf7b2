"""The output contract in one place: the tables' names, their schemas and the path layout.

Every module that writes, reads, registers or queries an output table asks this one for its
schema and its directory; nothing else spells a DDL string or a `dataset=` path. The schemas
are `StructType`s built in Python (no JVM needed to parse them).
"""

from __future__ import annotations

from pyspark.sql import types as T

#: The tables every audit run writes, one partition `dataset=<name>/run_date=<date>` each.
TABLES = ("examples", "class_issues", "classes", "summary", "quarantine")
#: Tables a run writes only with some settings (`annotators`: `input.annotator_column`); a
#: run without one removes the partition an earlier run of the same date left.
OPTIONAL_TABLES = ("annotators",)
#: The history: one row per run, partitioned by `dataset` only (appended, never replaced).
RUNS = "runs"
#: Written by `labelqa reviews`, partitioned like the audit's tables.
REVIEW_TABLES = ("reviews", "review_precision")
#: Written by `labelqa predict` (and `audit --features`), partitioned like the audit's tables:
#: the out-of-fold probabilities (the audit's array format, plus `fold`), each class's
#: held-out quality, and the label and feature rows the predict step quarantined.
PREDICT_TABLES = ("predictions", "model_quality", "predict_quarantine")
#: Every table `labelqa register` can put in the catalog.
CATALOG_TABLES = (*TABLES, *OPTIONAL_TABLES, RUNS, *REVIEW_TABLES, *PREDICT_TABLES)
#: The tables whose `id` column has the input's id type (`quarantine.id` is always a string).
ID_TABLES = ("examples", "class_issues")


# ---- layout ---------------------------------------------------------------------------------

def table_path(output: str, table: str) -> str:
    return f"{output.rstrip('/')}/{table}"


def partition_dir(root: str, table: str, dataset: str, run_date: str) -> str:
    return f"{table_path(root, table)}/dataset={dataset}/run_date={run_date}"


def dataset_dir(output: str, table: str, dataset: str) -> str:
    """A table's partition of one dataset, all run dates (the `runs` table's partition)."""
    return f"{table_path(output, table)}/dataset={dataset}"


def partition_glob(output: str, table: str) -> str:
    """Every `dataset=*/run_date=*` partition of a table."""
    return f"{table_path(output, table)}/dataset=*/run_date=*"


def staging_root(output: str, run_id: str) -> str:
    """Where a run writes its tables before they become visible."""
    return f"{output.rstrip('/')}/_staging/{run_id}"


def manifest_path(output: str, dataset: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/_manifests/dataset={dataset}/run_date={run_date}.json"


def predict_manifest_path(output: str, dataset: str, run_date: str) -> str:
    """The manifest of a `labelqa predict` run (the audit's stays where schedulers wait)."""
    return f"{output.rstrip('/')}/_manifests/predict/dataset={dataset}/run_date={run_date}.json"


def report_path(output: str, dataset: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/_reports/dataset={dataset}/run_date={run_date}.html"


# ---- schemas ----------------------------------------------------------------------------------

def _struct(*fields: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, kind) for name, kind in fields])


STRING, LONG, INT, DOUBLE, BOOLEAN = (T.StringType(), T.LongType(), T.IntegerType(),
                                      T.DoubleType(), T.BooleanType())
TIMESTAMP = T.TimestampType()
INTS, STRINGS, DOUBLES = T.ArrayType(INT), T.ArrayType(STRING), T.ArrayType(DOUBLE)

#: One tag of an explanation: the class, its predicted probability, the threshold it crossed.
EXPLAINED_TAG = _struct(("class_index", INT), ("class_name", STRING), ("pred_prob", DOUBLE),
                        ("threshold", DOUBLE))
EXPLANATION = _struct(("text", STRING), ("missing", T.ArrayType(EXPLAINED_TAG)),
                      ("extraneous", T.ArrayType(EXPLAINED_TAG)))


def examples_schema(id_type: T.DataType, with_class_scores: bool) -> T.StructType:
    fields: list[tuple[str, T.DataType]] = [
        ("id", id_type), ("given_labels", INTS), ("given_tags", STRINGS),
        ("label_quality_score", DOUBLE), ("is_label_issue", BOOLEAN), ("issue_rank", INT),
        ("suggested_labels", INTS), ("suggested_tags", STRINGS), ("num_class_issues", INT),
        ("explanation", EXPLANATION)]
    if with_class_scores:
        fields.append(("class_scores", DOUBLES))
    return _struct(*fields)


def class_issues_schema(id_type: T.DataType) -> T.StructType:
    return _struct(("id", id_type), ("class_index", INT), ("class_name", STRING),
                   ("given", BOOLEAN), ("pred_prob", DOUBLE), ("class_score", DOUBLE))


CLASSES = _struct(
    ("class_index", INT), ("class_name", STRING), ("num_given", LONG),
    ("threshold_given", DOUBLE), ("threshold_not_given", DOUBLE), ("cj_given_given", LONG),
    ("cj_given_not", LONG), ("cj_not_given", LONG), ("cj_not_not", LONG),
    ("label_issues", LONG), ("inverse_label_issues", LONG), ("label_noise", DOUBLE),
    ("inverse_label_noise", DOUBLE), ("label_quality_score", DOUBLE), ("note", STRING),
    ("separation_auc", DOUBLE), ("separation_auc_error", DOUBLE))

SUMMARY = _struct(
    ("run_id", STRING), ("num_examples", LONG), ("num_classes", INT),
    ("num_label_issues", LONG), ("overall_health_score", DOUBLE), ("labels_rows", LONG),
    ("labels_audited", LONG), ("labels_quarantined", LONG), ("labels_collapsed", LONG),
    ("predictions_rows", LONG), ("predictions_audited", LONG),
    ("predictions_quarantined", LONG), ("predictions_collapsed", LONG),
    ("repeated_tags_collapsed", LONG), ("separation_auc", DOUBLE),
    ("weak_separation_classes", INT), ("quarantined_by_reason", T.MapType(STRING, LONG)),
    ("filter_by", STRING), ("config_json", STRING), ("labelqa_version", STRING),
    ("spark_version", STRING), ("started_at", TIMESTAMP), ("finished_at", TIMESTAMP))

QUARANTINE = _struct(("source", STRING), ("id", STRING), ("reason", STRING),
                     ("detail", STRING), ("row_json", STRING))

NOISE_CHANGE = _struct(
    ("class_name", STRING), ("label_noise", DOUBLE), ("previous_label_noise", DOUBLE),
    ("change", DOUBLE), ("inverse_label_noise", DOUBLE),
    ("previous_inverse_label_noise", DOUBLE), ("inverse_change", DOUBLE))

RUNS_SCHEMA = _struct(
    ("run_id", STRING), ("run_date", STRING), ("status", STRING), ("num_examples", LONG),
    ("num_classes", INT), ("num_label_issues", LONG), ("overall_health_score", DOUBLE),
    ("gates_failed", STRINGS), ("previous_run_date", STRING),
    ("previous_health_score", DOUBLE), ("previous_num_label_issues", LONG),
    ("class_noise_changes", T.ArrayType(NOISE_CHANGE)), ("started_at", TIMESTAMP),
    ("finished_at", TIMESTAMP),
    # set by `labelqa reviews` on the reviewed run's row (null before)
    ("reviewed_pairs", LONG), ("confirmed_pairs", LONG), ("review_precision", DOUBLE))

ANNOTATORS = _struct(
    ("annotator", STRING), ("examples_tagged", LONG), ("tags_given", LONG),
    ("flagged_extraneous", LONG), ("extraneous_rate", DOUBLE),
    ("extraneous_rate_low", DOUBLE), ("extraneous_rate_high", DOUBLE),
    ("extraneous_ratio", DOUBLE), ("extraneous_stands_out", BOOLEAN),
    ("missing_opportunities", LONG), ("flagged_missing", LONG), ("missing_rate", DOUBLE),
    ("missing_rate_low", DOUBLE), ("missing_rate_high", DOUBLE), ("missing_ratio", DOUBLE),
    ("missing_stands_out", BOOLEAN))


def reviews_schema(id_type: T.DataType) -> T.StructType:
    return _struct(("id", id_type), ("class_index", INT), ("class_name", STRING),
                   ("verdict", STRING), ("flagged", BOOLEAN), ("given", BOOLEAN),
                   ("issue_rank", INT), ("reviewer", STRING), ("reviewed_at", TIMESTAMP),
                   ("source", STRING))


REVIEW_PRECISION = _struct(
    ("scope", STRING), ("key", STRING), ("reviewed", LONG), ("confirmed", LONG),
    ("precision", DOUBLE), ("precision_low", DOUBLE), ("precision_high", DOUBLE))

def predictions_schema(id_type: T.DataType) -> T.StructType:
    return _struct(("id", id_type), ("pred_probs", T.ArrayType(T.FloatType())), ("fold", INT))


MODEL_QUALITY = _struct(
    ("class_index", INT), ("class_name", STRING), ("positives", LONG), ("roc_auc", DOUBLE),
    ("roc_auc_error", DOUBLE), ("log_loss", DOUBLE), ("brier_score", DOUBLE),
    ("converged", BOOLEAN))

#: The partition columns every partitioned table gains when read from its root.
PARTITION_COLUMNS = _struct(("dataset", STRING), ("run_date", T.DateType()))

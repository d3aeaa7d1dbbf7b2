"""The class vocabulary: names in pred_probs order, from the config or the tables."""

from __future__ import annotations

import difflib

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.config import AuditConfig
from labelqa.errors import ConfigError, InputError
from labelqa.spark.driver import read_text
from labelqa.spark.formats import prediction_element_type
from labelqa.spark.names import column


def _configured(config: AuditConfig, spark: SparkSession
                ) -> tuple[tuple[str, ...], str] | None:
    """The configured class names and where they came from. `classes_path` is read through
    Hadoop's FileSystem, like every other path (a local file, HDFS, an object store)."""
    if config.classes_path is not None:
        try:
            text = read_text(spark, config.classes_path)
        except Exception as error:  # noqa: BLE001 - Py4J wraps the filesystem's own error
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
            raise ConfigError(f"classes_path: cannot read {config.classes_path!r} "
                              f"({reason})") from None
        if text is None:
            raise ConfigError(f"classes_path: cannot read {config.classes_path!r} "
                              "(No such file or directory)")
        return tuple(line.strip() for line in text.splitlines() if line.strip()), \
            f"classes_path {config.classes_path!r}"
    if config.classes is not None:
        return config.classes, "classes"
    return None


def schema_names(config: AuditConfig, labels: DataFrame, predictions: DataFrame
                 ) -> tuple[str, ...] | None:
    """The class names when the config or the schemas give them (no Spark job), else None."""
    inp = config.input
    configured = _configured(config, predictions.sparkSession)
    if inp.predictions_format == "wide":
        found = tuple(c[len(inp.prediction_prefix):] for c in predictions.columns
                      if c != inp.id_column and c.startswith(inp.prediction_prefix))
        return configured[0] if configured else found
    if configured:
        return configured[0]
    if inp.labels_format == "onehot":
        return tuple(c for c in labels.columns if c != inp.id_column)
    return None


#: how alike an unknown tag and a class name must be to name the class (difflib's ratio)
RESEMBLANCE_CUTOFF = 0.75


def resembling(tag: str, names: tuple[str, ...]) -> str | None:
    """The class an unknown tag most likely means: the same name in other letter case, else
    the closest by difflib when it is close enough."""
    by_case = [name for name in names if name.casefold() == tag.casefold()]
    if by_case:
        return by_case[0]
    close = difflib.get_close_matches(tag, names, n=1, cutoff=RESEMBLANCE_CUTOFF)
    return close[0] if close else None


def resolve(config: AuditConfig, labels: DataFrame, predictions: DataFrame,
            vector_length: int | None) -> tuple[str, ...]:
    """Class names; raises when the config and the data disagree about K. `vector_length`:
    the length most pred_probs arrays have (array predictions; None: no array has one)."""
    inp = config.input
    configured = _configured(config, predictions.sparkSession)
    from_schema = schema_names(config, labels, predictions)
    if from_schema is not None:
        names = from_schema
    elif inp.predictions_format == "long":
        if inp.class_column not in predictions.columns:
            raise InputError("predictions", inp.class_column, "column not found (columns: "
                             f"{', '.join(predictions.columns)})")
        values = column(inp.class_column)
        if isinstance(predictions.schema[inp.class_column].dataType, T.StringType):
            names = tuple(r[0] for r in predictions.select(values).where(values.isNotNull())
                          .distinct().orderBy(values).collect())
        else:
            top = predictions.agg(F.max(values)).first()[0]
            names = tuple(str(k) for k in range(int(top) + 1)) if top is not None else ()
    else:
        prediction_element_type(predictions, inp, ())  # the column exists and is an array
        names = tuple(str(i) for i in range(vector_length or 0))
    if configured and inp.predictions_format == "array":
        prediction_element_type(predictions, inp, names)
        if vector_length is not None and vector_length != len(names):
            raise ConfigError(f"{configured[1]}: {len(names)} class names, but the pred_probs "
                              f"arrays have length K={vector_length}")
    if configured and inp.predictions_format == "wide":
        missing = [n for n in names if inp.prediction_prefix + n not in predictions.columns]
        if missing:
            raise InputError("predictions", inp.prediction_prefix + missing[0],
                             "column not found for a configured class")
    if len(set(names)) != len(names):
        raise ConfigError("classes: class names must be unique")
    if len(names) < 2:
        raise InputError("predictions", None, f"need at least 2 classes, found {len(names)}")
    return names

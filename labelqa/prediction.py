"""`labelqa predict` as an API: from a label table and a features table to the written
`predictions`, `model_quality` and `predict_quarantine` tables and a manifest, staged and
published together like an audit's tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from labelqa import __version__
from labelqa.api import RunContext
from labelqa.config import AuditConfig
from labelqa.progress import StageLog, log, redact_uri
from labelqa.record import SourceCounts
from labelqa.spark.driver import path_exists, write_text_atomically
from labelqa.spark.inputs import read_input
from labelqa.spark.output import discard, publish, refuse_other_id_type, write_partition
from labelqa.spark.predict import (
    ClassQuality,
    Prediction,
    feature_intake,
    predict_intake,
)
from labelqa.tables import (
    PREDICT_TABLES,
    partition_dir,
    predict_manifest_path,
    staging_root,
)


@dataclass(frozen=True)
class PredictRecord:
    """One predict run: what came in, how the models did, what was written."""

    output: str
    dataset: str
    run_date: str
    run_id: str
    num_examples: int
    num_features: int
    num_classes: int
    labels: SourceCounts
    features: SourceCounts
    quality: tuple[ClassQuality, ...]
    evaluations: int
    warnings: tuple[str, ...]
    config_json: str
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    manifest: str
    spark_version: str
    started_at: dt.datetime
    finished_at: dt.datetime
    stages_seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def predictions_path(self) -> str:
        """The `predictions` partition: what `labelqa audit --predictions` reads as it is."""
        return self.outputs["predictions"]

    @property
    def mean_auc(self) -> float | None:
        aucs = [q.roc_auc for q in self.quality if q.roc_auc is not None]
        return sum(aucs) / len(aucs) if aucs else None

    def manifest_document(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "status": "succeeded", "command": "predict",
            "dataset": self.dataset, "run_date": self.run_date,
            "config": json.loads(self.config_json), "inputs": dict(self.inputs),
            "rows": {"labels": dataclasses.asdict(self.labels),
                     "features": dataclasses.asdict(self.features),
                     "examples": self.num_examples},
            "model": {"num_features": self.num_features, "num_classes": self.num_classes,
                      "evaluations": self.evaluations, "mean_roc_auc": self.mean_auc,
                      "weak_classes": [q.class_name for q in self.quality if q.weak],
                      "classes": [dataclasses.asdict(q) for q in self.quality]},
            "warnings": list(self.warnings), "outputs": dict(self.outputs),
            "versions": {"labelqa": __version__, "spark": self.spark_version},
            "timings": {"started_at": self.started_at.isoformat(),
                        "finished_at": self.finished_at.isoformat(),
                        "stages_seconds": dict(self.stages_seconds)},
        }


def run_predict_job(spark: SparkSession, labels_path: str, features_path: str, output: str,
                    config: AuditConfig, run: RunContext) -> PredictRecord:
    """The CLI's predict: read both Parquet inputs, then `publish_predictions`."""
    labels = read_input(spark, labels_path, "labels")
    features = read_input(spark, features_path, "features")
    return publish_predictions(spark, labels, features, output, config, run,
                               {"labels": redact_uri(labels_path),
                                "features": redact_uri(features_path)})


def publish_predictions(spark: SparkSession, labels: DataFrame, features: DataFrame,
                        output: str, config: AuditConfig, run: RunContext,
                        inputs: Mapping[str, str] | None = None) -> PredictRecord:
    """Predict into `output`: stage the three tables, publish them together, then write the
    manifest (`_manifests/predict/...`). As in an audit, nothing of a failed run becomes
    visible except the quarantine of a run its bad rows stopped."""
    started_at = run.clock()
    stages = StageLog()
    staging = staging_root(output, run.run_id)
    log.info("predict %s: dataset=%s run_date=%s output=%s", run.run_id, run.dataset,
             run.run_date, redact_uri(output))
    try:
        with stages.stage("read and check inputs") as info:
            intake = feature_intake(labels, features, config)
            info["rows"] = intake.num_examples
        try:
            refuse_other_id_type(spark, output, run.dataset, run.run_date, intake.id_type,
                                 config.input.id_column)
            write_partition(intake.quarantine, staging, "predict_quarantine", run.dataset,
                            run.run_date)
            stopped = intake.stop_error(config)
            if stopped is not None:
                publish(spark, staging, output, ("predict_quarantine",), run.dataset,
                        run.run_date, config.output.catalog.database)
                raise stopped
            with predict_intake(intake, config, stages) as prediction:
                _stage(spark, prediction, staging, run, stages)
        finally:
            intake.release()
        with stages.stage("publish"):
            publish(spark, staging, output, PREDICT_TABLES, run.dataset, run.run_date,
                    config.output.catalog.database)
    except BaseException:
        if path_exists(spark, staging):
            discard(spark, staging)
        raise
    record = PredictRecord(
        output=output, dataset=run.dataset, run_date=run.run_date, run_id=run.run_id,
        num_examples=prediction.num_examples, num_features=prediction.num_features,
        num_classes=len(prediction.class_names), labels=prediction.labels,
        features=prediction.features, quality=prediction.quality,
        evaluations=prediction.evaluations, warnings=tuple(prediction.warnings()),
        config_json=config.to_json(),
        inputs=dict(inputs) if inputs is not None else {"labels": "DataFrame",
                                                        "features": "DataFrame"},
        outputs={name: partition_dir(output, name, run.dataset, run.run_date)
                 for name in PREDICT_TABLES},
        manifest=predict_manifest_path(output, run.dataset, run.run_date),
        spark_version=spark.version, started_at=started_at, finished_at=run.clock(),
        stages_seconds=dict(stages.timings))
    write_text_atomically(spark, record.manifest, json.dumps(
        record.manifest_document(), indent=2, sort_keys=True, default=str))
    return record


def _stage(spark: SparkSession, prediction: Prediction, staging: str, run: RunContext,
           stages: StageLog) -> None:
    with stages.stage("write predictions") as info:
        write_partition(prediction.predictions, staging, "predictions", run.dataset,
                        run.run_date)
        info["rows"] = prediction.num_examples
    write_partition(prediction.quality_frame(spark), staging, "model_quality", run.dataset,
                    run.run_date)


_PREDICTIONS_PARTITION = re.compile(r"(?P<root>.*)/predictions/dataset=(?P<dataset>[^/]+)/"
                                    r"run_date=(?P<run_date>[^/]+)/?$")


def weak_class_notes(quality: tuple[ClassQuality, ...]) -> dict[str, str]:
    """The audit's `classes.note` of each class whose held-out AUC is weak, by class name."""
    return {q.class_name: q.note for q in quality if q.note is not None}


def model_notes_for(spark: SparkSession, predictions_path: str) -> dict[str, str]:
    """When `predictions_path` is a partition of labelqa predict's `predictions` table, the
    notes of its weak classes from the `model_quality` partition beside it (else none)."""
    match = _PREDICTIONS_PARTITION.fullmatch(predictions_path.rstrip("/"))
    if match is None:
        return {}
    quality_dir = partition_dir(match["root"], "model_quality", match["dataset"],
                                match["run_date"])
    if not path_exists(spark, quality_dir):
        return {}
    rows = spark.read.parquet(quality_dir).collect()  # K rows
    return weak_class_notes(tuple(ClassQuality(**row.asDict()) for row in rows))

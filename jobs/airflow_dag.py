"""Airflow 3 DAG: run the labelqa audit every night with spark-submit, then wait for its manifest.

Copy this file to the DAGs folder and set the Airflow Variables it reads (`airflow variables set
labelqa_output /data/lake/labelqa`, or the environment: AIRFLOW_VAR_LABELQA_OUTPUT=...), or edit
the defaults below.

What is retried follows labelqa's exit code (README: "Exit codes"):

* 0: the task succeeds; the sensor then accepts the run's manifest once it says `succeeded`.
* 2 (bad configuration or input) and 3 (a quality gate failed): the task fails at once, with
  no retry. A rerun would read the same input and config and fail the same way; after exit 3
  the outputs are written and the manifest says `gate_failed`, so the sensor never succeeds.
* anything else (1: an unexpected error, a lost executor or driver, an unreachable cluster;
  or spark-submit's own failures): retried `labelqa_retries` times, `labelqa_retry_delay_seconds`
  apart. Retries are safe: a rerun of the same dataset and date replaces exactly its partitions.

Written for Airflow 3 (airflow.sdk and the standard provider); tested with 3.3.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.hooks.subprocess import SubprocessHook
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG, BaseOperator, Variable

try:  # the Task SDK's home of the exceptions since Airflow 3.1
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowException, AirflowFailException

DATASET = Variable.get("labelqa_dataset", default="products")
OUTPUT = Variable.get("labelqa_output", default="/data/lake/labelqa")
LABELS = Variable.get("labelqa_labels", default="/data/lake/tags")
PREDICTIONS = Variable.get("labelqa_predictions", default="/data/lake/predictions")
MASTER = Variable.get("labelqa_master", default="spark://spark-master:7077")
LABELQA_HOME = Variable.get("labelqa_home", default="/opt/labelqa")
PYTHON = Variable.get("labelqa_python", default="/opt/labelqa/.venv/bin/python")
CONFIG = Variable.get("labelqa_config", default=f"{LABELQA_HOME}/conf/audit.yaml")
SPARK_SUBMIT = Variable.get("labelqa_spark_submit", default="spark-submit")
RETRIES = int(Variable.get("labelqa_retries", default="2"))
RETRY_DELAY = dt.timedelta(seconds=float(Variable.get("labelqa_retry_delay_seconds",
                                                      default="600")))
POKE_SECONDS = float(Variable.get("labelqa_poke_seconds", default="60"))
MANIFEST_TIMEOUT = float(Variable.get("labelqa_manifest_timeout_seconds", default=str(6 * 3600)))

log = logging.getLogger(__name__)

#: labelqa's exit codes that a retry cannot fix (2: bad config or input; 3: a gate failed)
NOT_RETRIED = {2: "bad configuration or input", 3: "a quality gate failed"}

AUDIT_COMMAND = [
    SPARK_SUBMIT, "--master", MASTER, "--deploy-mode", "client",
    "--py-files", f"{LABELQA_HOME}/dist/labelqa.zip",
    "--conf", f"spark.pyspark.python={PYTHON}",
    f"{LABELQA_HOME}/jobs/label_audit.py", "audit",
    "--labels", LABELS, "--predictions", PREDICTIONS, "--output", OUTPUT,
    "--dataset", DATASET, "--run-date", "{{ ds }}", "--config", CONFIG,
]


class SparkSubmitAudit(BaseOperator):
    """Runs `command` (spark-submit of the audit; its output goes to the task log) and turns
    labelqa's exit code into the task's outcome: exits 2 and 3 fail without a retry
    (AirflowFailException skips the remaining retries), any other failure is retried."""

    template_fields: Sequence[str] = ("command",)

    def __init__(self, *, command: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = command
        self._hook: SubprocessHook | None = None

    def execute(self, context: Any) -> None:
        self._hook = SubprocessHook()
        result = self._hook.run_command(self.command)
        if result.exit_code == 0:
            return
        if result.exit_code in NOT_RETRIED:
            raise AirflowFailException(
                f"labelqa exited {result.exit_code} ({NOT_RETRIED[result.exit_code]}): not "
                f"retried, a rerun would fail the same way; last line: {result.output}")
        raise AirflowException(f"labelqa exited {result.exit_code}: retried if retries are "
                               f"left; last line: {result.output}")

    def on_kill(self) -> None:  # a cancelled or timed-out task stops its spark-submit too
        if self._hook is not None:
            self._hook.send_sigterm()


def manifest_path(output: str, dataset: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/_manifests/dataset={dataset}/run_date={run_date}.json"


def manifest_succeeded(output: str, dataset: str, run_date: str) -> bool:
    """The sensor's check: the run's manifest exists and says `succeeded`."""
    path = manifest_path(output, dataset, run_date)
    if not os.path.exists(path):
        log.info("no manifest yet at %s", path)
        return False
    with open(path, encoding="utf-8") as handle:
        status = json.load(handle).get("status")
    if status != "succeeded":  # gate_failed: the audit task has failed already
        log.info("manifest %s says %s, not succeeded", path, status)
    return status == "succeeded"


with DAG(
    dag_id=f"labelqa_audit_{DATASET}",
    schedule="0 3 * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
    tags=["labelqa", "data-quality"],
) as dag:
    audit = SparkSubmitAudit(task_id="audit", command=AUDIT_COMMAND)
    wait_for_manifest = PythonSensor(
        task_id="wait_for_manifest",
        python_callable=manifest_succeeded,
        op_kwargs={"output": OUTPUT, "dataset": DATASET, "run_date": "{{ ds }}"},
        poke_interval=POKE_SECONDS,
        timeout=MANIFEST_TIMEOUT,
        mode="reschedule",
    )
    audit >> wait_for_manifest

"""Airflow DAG: run the labelqa audit every night with spark-submit, then wait for its manifest.

Copy this file to the DAGs folder and set the Airflow Variables it reads (or edit the
defaults below). The audit task retries; a rerun of the same dataset and date replaces exactly
its partitions, so retries are safe. Exit 3 (a quality gate failed) fails the task: the
outputs are written and the manifest says `gate_failed`, so the sensor never succeeds.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator
from airflow.sensors.python import PythonSensor

DATASET = Variable.get("labelqa_dataset", default_var="products")
OUTPUT = Variable.get("labelqa_output", default_var="/data/lake/labelqa")
LABELS = Variable.get("labelqa_labels", default_var="/data/lake/tags")
PREDICTIONS = Variable.get("labelqa_predictions", default_var="/data/lake/predictions")
MASTER = Variable.get("labelqa_master", default_var="spark://spark-master:7077")
LABELQA_HOME = Variable.get("labelqa_home", default_var="/opt/labelqa")
PYTHON = Variable.get("labelqa_python", default_var="/opt/labelqa/.venv/bin/python")

SPARK_SUBMIT = (
    f"spark-submit --master {MASTER} --deploy-mode client "
    f"--py-files {LABELQA_HOME}/dist/labelqa.zip "
    f"--conf spark.pyspark.python={PYTHON} "
    f"{LABELQA_HOME}/jobs/label_audit.py audit "
    f"--labels {LABELS} --predictions {PREDICTIONS} --output {OUTPUT} "
    f"--dataset {DATASET} --run-date {{{{ ds }}}} --config {LABELQA_HOME}/conf/audit.yaml"
)


def manifest_path(output: str, dataset: str, run_date: str) -> str:
    return f"{output.rstrip('/')}/_manifests/dataset={dataset}/run_date={run_date}.json"


def manifest_succeeded(output: str, dataset: str, run_date: str) -> bool:
    """The sensor's check: the run's manifest exists and says `succeeded`."""
    path = manifest_path(output, dataset, run_date)
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("status") == "succeeded"


with DAG(
    dag_id=f"labelqa_audit_{DATASET}",
    schedule="0 3 * * *",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=10)},
    tags=["labelqa", "data-quality"],
) as dag:
    audit = BashOperator(
        task_id="audit",
        bash_command=SPARK_SUBMIT,
    )
    wait_for_manifest = PythonSensor(
        task_id="wait_for_manifest",
        python_callable=manifest_succeeded,
        op_kwargs={"output": OUTPUT, "dataset": DATASET, "run_date": "{{ ds }}"},
        poke_interval=60,
        timeout=6 * 3600,
        mode="reschedule",
    )
    audit >> wait_for_manifest

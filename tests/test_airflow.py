"""(slow) jobs/airflow_dag.py in a real Airflow 3: installed from PyPI into its own virtual
environment (tests/airflow-requirements.txt), a SQLite metadata database and AIRFLOW_HOME in a
temporary directory, `airflow dags test` submitting the audit to a local spark-submit (the one
in pyspark's wheel, master local[2]).

How the exit codes are produced, each by a real labelqa run:
* 0: a good sample; 3: the same sample under a gate it fails (gates.max_issue_fraction);
* 2: a label table whose `labels` column is a string, not array<int>;
* 1, transient: the first spark-submit of the run finds the driver's port taken (the test
  holds it, and that call asks for it with spark.port.maxRetries=0), so Spark cannot start and
  labelqa exits 1; the retry gets a free port. A small wrapper the DAG runs as its spark-submit
  (Variable labelqa_spark_submit) logs every call and adds that port to the first one while a
  `fail-once` file exists.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelqa.sample import generate, write_sample
from tests.conftest import bare_environment
from tests.venvs import cached_venv

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RUN_DATE = "2026-11-05"

#: the DAG's spark-submit: every call logged to $LABELQA_CALLS; while $LABELQA_FAIL_ONCE exists
#: the call removes it and asks for the driver port the test holds (a real exit 1 of labelqa)
WRAPPER = """#!/bin/sh
echo "$*" >> "$LABELQA_CALLS"
if [ -e "$LABELQA_FAIL_ONCE" ]; then
    rm -f "$LABELQA_FAIL_ONCE"
    exec "$LABELQA_SPARK_SUBMIT" --conf spark.driver.port="$LABELQA_BUSY_PORT" \\
        --conf spark.port.maxRetries=0 "$@"
fi
exec "$LABELQA_SPARK_SUBMIT" "$@"
"""


def spark_submit() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


class Airflow:
    """One AIRFLOW_HOME (SQLite metadata database, the DAG copied into its dags folder, as a
    user installs it) shared by the module's tests; each test audits its own dataset, so each
    has its own DAG (labelqa_audit_<dataset>)."""

    def __init__(self, venv: Path, root: Path, busy_port: int):
        self.venv, self.root, self.busy_port = venv, root, busy_port
        self.home = root / "airflow-home"
        (self.home / "dags").mkdir(parents=True)
        (self.home / "dags" / "airflow_dag.py").write_bytes(
            (ROOT / "jobs" / "airflow_dag.py").read_bytes())
        self.wrapper = root / "spark-submit"
        self.wrapper.write_text(WRAPPER)
        self.wrapper.chmod(0o755)
        self.output = root / "out"

    def env(self, dataset: str, **variables: str) -> dict[str, str]:
        """The environment of an `airflow` command: Airflow's settings, and the DAG's
        Variables as AIRFLOW_VAR_* (the way a deployment can give them too)."""
        settings = {"labelqa_dataset": dataset, "labelqa_output": str(self.output),
                    "labelqa_master": "local[2]", "labelqa_home": str(ROOT),
                    "labelqa_python": sys.executable, "labelqa_spark_submit": str(self.wrapper),
                    "labelqa_config": str(self.root / "fast.yaml"),
                    "labelqa_retry_delay_seconds": "1", "labelqa_poke_seconds": "1",
                    **variables}
        env = bare_environment()
        env.update({
            "PATH": f"{self.venv / 'bin'}:{env['PATH']}", "PYTHONUNBUFFERED": "1",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "LABELQA_SPARK_SUBMIT": str(spark_submit()),
            "LABELQA_CALLS": str(self.calls_file(dataset)),
            "LABELQA_FAIL_ONCE": str(self.root / f"fail-once-{dataset}"),
            "LABELQA_BUSY_PORT": str(self.busy_port),
        })
        env.update({f"AIRFLOW_VAR_{key.upper()}": value for key, value in settings.items()})
        return env

    def calls_file(self, dataset: str) -> Path:
        return self.root / f"calls-{dataset}.log"

    def calls(self, dataset: str) -> list[str]:
        """The spark-submit commands the DAG ran for `dataset`."""
        path = self.calls_file(dataset)
        return path.read_text().splitlines() if path.exists() else []

    def airflow(self, dataset: str, *args: str, **variables: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.venv / "bin" / "airflow"), *args], cwd=self.root,
                              env=self.env(dataset, **variables), capture_output=True,
                              text=True, timeout=900)

    def dags_test(self, dataset: str, *args: str, **variables: str
                  ) -> subprocess.CompletedProcess:
        result = self.airflow(dataset, "dags", "test", f"labelqa_audit_{dataset}", RUN_DATE,
                              *args, **variables)
        (self.root / f"dags-test-{dataset}.log").write_text(result.stdout + result.stderr)
        return result

    def task_instances(self, dataset: str) -> dict[str, tuple[str, int]]:
        """(state, try number) of each task of the dataset's DAG run, from Airflow's database."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute("SELECT task_id, state, try_number FROM task_instance "
                              "WHERE dag_id = ?", (f"labelqa_audit_{dataset}",)).fetchall()
        return {task: (state, tries) for task, state, tries in rows}

    def tries(self, dataset: str) -> list[tuple[int, str]]:
        """The audit task's earlier tries (Airflow keeps them in task_instance_history)."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute("SELECT try_number, state FROM task_instance_history WHERE "
                              "dag_id = ? AND task_id = 'audit' ORDER BY try_number",
                              (f"labelqa_audit_{dataset}",)).fetchall()

    def manifest(self, dataset: str) -> Path:
        return self.output / "_manifests" / f"dataset={dataset}" / f"run_date={RUN_DATE}.json"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Iterator[Airflow]:
    venv = cached_venv("airflow-venv", (ROOT / "tests" / "airflow-requirements.txt")
                       .read_text().splitlines())
    root = tmp_path_factory.mktemp("airflow")
    # the DAG submits dist/labelqa.zip, as in production
    subprocess.run(["make", "-s", "dist"], cwd=ROOT, check=True, timeout=300,
                   env={**os.environ, "MAKEFLAGS": ""}, capture_output=True)
    write_sample(generate(300, 5, 51), str(root / "labels.parquet"),
                 str(root / "predictions.parquet"))
    # 44 of the 300 examples are flagged: this gate fails (exit 3)
    (root / "gated.yaml").write_text("gates:\n  max_issue_fraction: 0.01\n"
                                     "spark:\n  conf:\n    spark.sql.shuffle.partitions: 4\n"
                                     "    spark.ui.enabled: false\n")
    (root / "fast.yaml").write_text("spark:\n  conf:\n    spark.sql.shuffle.partitions: 4\n"
                                    "    spark.ui.enabled: false\n")
    labels = pq.read_table(root / "labels.parquet")
    pq.write_table(pa.table({"id": labels["id"], "labels": pa.array(
        [",".join(map(str, tags)) for tags in labels["labels"].to_pylist()])}),
        root / "bad-labels.parquet")
    with socket.socket() as busy:  # the driver port a transient failure finds taken
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        instance = Airflow(venv, root, busy.getsockname()[1])
        migrated = subprocess.run([str(venv / "bin" / "airflow"), "db", "migrate"],
                                  env=instance.env("none"), capture_output=True, text=True,
                                  timeout=600)
        assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
        yield instance


def inputs(airflow: Airflow, labels: str = "labels.parquet") -> dict[str, str]:
    return {"labelqa_labels": str(airflow.root / labels),
            "labelqa_predictions": str(airflow.root / "predictions.parquet")}


def test_good_input_the_audit_succeeds_and_the_sensor_accepts_its_manifest(airflow):
    result = airflow.dags_test("good", **inputs(airflow))
    assert result.returncode == 0, result.stdout[-5000:]
    assert airflow.task_instances("good") == {"audit": ("success", 1),
                                              "wait_for_manifest": ("success", 1)}
    calls = airflow.calls("good")
    assert len(calls) == 1
    assert calls[0] == (
        f"--master local[2] --deploy-mode client --py-files {ROOT}/dist/labelqa.zip "
        f"--conf spark.pyspark.python={sys.executable} {ROOT}/jobs/label_audit.py audit "
        f"--labels {airflow.root}/labels.parquet --predictions "
        f"{airflow.root}/predictions.parquet --output {airflow.output} --dataset good "
        f"--run-date {RUN_DATE} --config {airflow.root}/fast.yaml")
    manifest = json.loads(airflow.manifest("good").read_text())
    assert manifest["status"] == "succeeded"
    assert "audited 300 examples x 5 classes: 44 label issues" in result.stdout


def test_the_sensor_waits_until_the_manifest_says_succeeded(airflow):
    """The audit marked successful without running (--mark-success-pattern), so the sensor
    starts before any manifest: it keeps waiting through no manifest and a `gate_failed` one
    (each written once the sensor's log shows it saw the previous state), and accepts the
    `succeeded` one."""
    manifest = airflow.manifest("late")
    command = [str(airflow.venv / "bin" / "airflow"), "dags", "test", "labelqa_audit_late",
               RUN_DATE, "--mark-success-pattern", "^audit$"]
    seen = []
    # the sensor's timeout bounds the wait should the lines below never come
    env = airflow.env("late", labelqa_manifest_timeout_seconds="300")
    with subprocess.Popen(command, cwd=airflow.root, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        for line in process.stdout:
            seen.append(line)
            if "no manifest yet at" in line and not manifest.exists():
                manifest.parent.mkdir(parents=True, exist_ok=True)
                manifest.write_text(json.dumps({"status": "gate_failed"}))
            elif "says gate_failed, not succeeded" in line:
                manifest.write_text(json.dumps({"status": "succeeded"}))
    output = "".join(seen)
    (airflow.root / "dags-test-late.log").write_text(output)
    assert process.returncode == 0, output[-5000:]
    assert f"no manifest yet at {manifest}" in output
    assert f"manifest {manifest} says gate_failed, not succeeded" in output
    assert airflow.task_instances("late") == {"audit": ("success", 1),  # marked, not run
                                              "wait_for_manifest": ("success", 1)}
    assert airflow.calls("late") == []


def test_a_manifest_that_never_comes_fails_the_sensor_at_its_timeout(airflow):
    result = airflow.dags_test("never", "--mark-success-pattern", "^audit$",
                               labelqa_manifest_timeout_seconds="3")
    assert result.returncode != 0
    assert airflow.task_instances("never")["wait_for_manifest"][0] == "failed"
    assert "AirflowSensorTimeout" in result.stdout + result.stderr


def test_a_gate_failure_fails_the_task_without_retries(airflow):
    result = airflow.dags_test("gated", **inputs(airflow),
                               labelqa_config=str(airflow.root / "gated.yaml"))
    assert result.returncode != 0
    assert airflow.task_instances("gated") == {"audit": ("failed", 1),
                                               "wait_for_manifest": ("upstream_failed", 0)}
    assert len(airflow.calls("gated")) == 1 and airflow.tries("gated") == []
    assert ("labelqa exited 3 (a quality gate failed): not retried, a rerun would fail the "
            "same way; last line: labelqa: error: quality gate failed: issue fraction 0.1467 "
            "> gates.max_issue_fraction=0.01") in result.stdout
    assert json.loads(airflow.manifest("gated").read_text())["status"] == "gate_failed"


def test_bad_input_fails_the_task_without_retries(airflow):
    result = airflow.dags_test("bad", **inputs(airflow, "bad-labels.parquet"))
    assert result.returncode != 0
    assert airflow.task_instances("bad") == {"audit": ("failed", 1),
                                             "wait_for_manifest": ("upstream_failed", 0)}
    assert len(airflow.calls("bad")) == 1 and airflow.tries("bad") == []
    assert ("labelqa exited 2 (bad configuration or input): not retried, a rerun would fail "
            "the same way; last line: labelqa: error: labels.labels: must be array<int>, found "
            "string") in result.stdout
    assert not airflow.manifest("bad").exists()


def test_a_transient_failure_is_retried(airflow):
    (airflow.root / "fail-once-flaky").touch()
    result = airflow.dags_test("flaky", **inputs(airflow))
    assert result.returncode == 0, result.stdout[-5000:]
    assert airflow.task_instances("flaky") == {"audit": ("success", 2),
                                               "wait_for_manifest": ("success", 1)}
    assert airflow.tries("flaky") == [(1, "failed")]  # try 1 failed, try 2 succeeded
    first, second = airflow.calls("flaky")
    assert first == second  # the same command, run again
    assert "Address already in use: Service 'sparkDriver' failed after 0 retries" in result.stdout
    assert "labelqa exited 1: retried if retries are left" in result.stdout
    assert json.loads(airflow.manifest("flaky").read_text())["status"] == "succeeded"


def test_the_dags_manifest_path_is_labelqas_layout(airflow):
    # the DAG imports without labelqa (the scheduler's environment has neither it nor
    # pyspark), so it spells the manifest's path itself: it must be labelqa.tables'
    from labelqa.tables import manifest_path

    dag = airflow.home / "dags" / "airflow_dag.py"
    found = subprocess.run(
        [str(airflow.venv / "bin" / "python"), "-c",
         "import importlib.util, sys; spec = importlib.util.spec_from_file_location('dag', "
         "sys.argv[1]); dag = importlib.util.module_from_spec(spec); "
         "spec.loader.exec_module(dag); print(dag.manifest_path('s3a://b/out/', 'tags', "
         "'2026-11-05'))", str(dag)],
        env=airflow.env("none"), capture_output=True, text=True, timeout=300)
    assert found.returncode == 0, found.stderr[-3000:]
    assert found.stdout.strip().splitlines()[-1] == manifest_path("s3a://b/out/", "tags",
                                                                  "2026-11-05")

"""A real standalone Spark cluster (a master and two workers on 127.0.0.1, from the installed
pyspark), the audit submitted with spark-submit, and faults injected into it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark
import pytest

from labelqa.sample import generate, write_sample
from tests.processes import free_port, kill, stop

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SPARK_HOME = Path(pyspark.__file__).parent


def _env() -> dict:
    return {**os.environ, "SPARK_HOME": str(SPARK_HOME), "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_NO_DAEMONIZE": "1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and two workers (1 core, 1 GiB each); stopped at the end of the module."""
    work = tmp_path_factory.mktemp("cluster")
    port, ui = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = str(SPARK_HOME / "bin/spark-class")
    processes = [subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(ui)], env=_env(),
        stdout=open(work / "master.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)]
    for index in range(2):
        processes.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
             "--cores", "1", "--memory", "1g", "--webui-port", str(free_port()),
             "--work-dir", str(work / f"worker{index}")], env=_env(),
            stdout=open(work / f"worker{index}.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True))
    deadline = time.time() + 120
    alive = 0
    while time.time() < deadline and alive < 2:
        time.sleep(2)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as response:
                state = json.load(response)
            alive = sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")
        except OSError:
            continue
    if alive < 2:
        kill(processes)
        pytest.fail("the standalone cluster did not start: " + (work / "master.log").read_text())
    subprocess.run(["make", "-s", "dist"], cwd=ROOT, check=True, env={**os.environ,
                                                                      "MAKEFLAGS": ""})
    yield url
    stop(processes)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster-inputs")
    write_sample(generate(20_000, 8, 61), str(root / "labels"), str(root / "predictions"),
                 rows_per_file=2_500)
    write_sample(generate(20_000, 8, 62), str(root / "labels2"), str(root / "predictions2"),
                 rows_per_file=2_500)
    return root


def _submit(master: str, inputs: Path, output: Path, *extra: str, labels="labels",
            predictions="predictions", background=False):
    command = [str(SPARK_HOME / "bin/spark-submit"), "--master", master,
               "--py-files", str(ROOT / "dist/labelqa.zip"),
               "--conf", f"spark.pyspark.python={sys.executable}",
               "--conf", "spark.executor.memory=900m",
               "--conf", "spark.ui.enabled=false",
               str(ROOT / "jobs/label_audit.py"), "audit",
               "--labels", str(inputs / labels), "--predictions", str(inputs / predictions),
               "--output", str(output), "--dataset", "c", "--run-date", "2026-11-06",
               "--set", "spark.conf.spark.sql.shuffle.partitions=4", *extra]
    if background:
        return subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900)


def _tables(spark, output: Path) -> dict:
    return {t: sorted(map(str, spark.read.parquet(str(output / t)).drop("run_id").collect()))
            for t in ("examples", "class_issues", "classes")}


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and "_staging" not in p.parts}


@pytest.fixture(scope="module")
def local_result(spark, inputs, tmp_path_factory):
    from labelqa.cli import main

    output = tmp_path_factory.mktemp("local-out")
    assert main(["audit", "--labels", str(inputs / "labels"), "--predictions",
                 str(inputs / "predictions"), "--output", str(output), "--dataset", "c",
                 "--run-date", "2026-11-06", "--master", "local[2,2]"]) == 0
    return _tables(spark, output)


def test_spark_submit_on_a_standalone_cluster_equals_local_mode(spark, cluster, inputs,
                                                                local_result, tmp_path):
    result = _submit(cluster, inputs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audited 20000 examples x 8 classes" in result.stdout
    assert _tables(spark, tmp_path) == local_result
    manifest = json.loads((tmp_path / "_manifests/dataset=c/run_date=2026-11-06.json")
                          .read_text())
    assert manifest["status"] == "succeeded"


def _executor_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "CoarseGrainedExecutorBackend"],
                           capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def test_an_executor_killed_mid_run(spark, cluster, inputs, local_result, tmp_path):
    """The run completes with identical output (Spark reruns the lost tasks), or fails and
    leaves nothing partial behind."""
    job = _submit(cluster, inputs, tmp_path, background=True)
    deadline = time.time() + 300
    while time.time() < deadline and not _executor_pids():
        time.sleep(0.5)
    time.sleep(8)  # well into the run
    victims = _executor_pids()
    assert victims, "no executor to kill"
    os.kill(victims[0], signal.SIGKILL)
    output, _ = job.communicate(timeout=900)
    if job.returncode == 0:
        assert _tables(spark, tmp_path) == local_result
    else:
        assert not (tmp_path / "_manifests").exists(), output
        assert not list((tmp_path).glob("examples/dataset=c/*")), output


def test_a_driver_killed_during_a_rerun_leaves_the_previous_partition(spark, cluster, inputs,
                                                                      tmp_path):
    first = _submit(cluster, inputs, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    before = _snapshot(tmp_path)
    job = _submit(cluster, inputs, tmp_path, labels="labels2", predictions="predictions2",
                  background=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "_staging").glob("*/quarantine")):
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=60)
    assert _snapshot(tmp_path) == before


def test_a_corrupt_input_file_exits_2_with_a_clear_message(cluster, inputs, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for part in sorted((inputs / "labels").glob("*.parquet"))[:2]:
        (broken / part.name).write_bytes(part.read_bytes())
    (broken / "part-99999.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    result = _submit(cluster, tmp_path, tmp_path / "out", labels="broken",
                     predictions=str(inputs / "predictions"))
    assert result.returncode == 2, result.stdout + result.stderr
    # spark-submit's PythonRunner merges the Python driver's stderr into its own stdout
    printed = result.stdout + result.stderr
    errors = [line for line in printed.splitlines() if line.startswith("labelqa: ")]
    assert len(errors) == 1 and errors[0].startswith(
        "labelqa: error: labels: unreadable input file"), printed
    assert "Traceback" not in printed

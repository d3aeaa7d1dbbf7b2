"""One SparkSession for the whole test run (local[2,2]: two cores, a failed task is retried)."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def bare_environment() -> dict[str, str]:
    """A user's shell without the virtual environment: no venv on PATH, no PYSPARK_* or
    SPARK_HOME (Java stays findable)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return env


@pytest.fixture(scope="session")
def spark():
    from labelqa.spark.session import build_session

    session = build_session("local[2,2]", {
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "2g",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # managed catalog tables (output.catalog) go here, not into the working directory
        "spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="labelqa-warehouse-"),
    }, "labelqa-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


#: The two runs of dataset "demo" that the SQL and report tests query.
RUN_DATES = ("2026-11-26", "2026-11-27")


@pytest.fixture(scope="session")
def two_runs(spark, tmp_path_factory):
    """Outputs of two daily audits of one tagging table (the demo's tags): the second day's
    annotations and model differ, so issues come and go between the runs."""
    import numpy as np

    from labelqa.api import RunContext, run_audit_job
    from labelqa.config import load_config
    from labelqa.demo import PREVALENCE, TAGS
    from labelqa.sample import generate, write_sample

    root = tmp_path_factory.mktemp("two_runs")
    output = root / "out"
    config = load_config(None, [f"classes={list(TAGS)}"])
    reports = []
    for day, run_date in enumerate(RUN_DATES):
        sample = generate(1500, len(TAGS), 300 + day, prevalence=PREVALENCE, dtype=np.float32,
                          missing_rate=0.05, extra_rate=0.01)
        labels, predictions = root / f"labels{day}", root / f"predictions{day}"
        write_sample(sample, str(labels), str(predictions), rows_per_file=500)
        reports.append(run_audit_job(spark, str(labels), str(predictions), str(output), config,
                                     RunContext("demo", run_date, f"run-{day}")))
    return output, reports

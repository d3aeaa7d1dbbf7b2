"""One SparkSession for the whole test run (local[2,2]: two cores, a failed task is retried)."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from labelqa.spark.session import build_session

    session = build_session("local[2,2]", {
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "2g",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }, "labelqa-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()

"""(slow) labelqa through Spark Connect: a Spark Connect server started from the installed
pyspark (`sbin/start-connect-server.sh --wait`, 127.0.0.1, local[2], its own working
directory), the commands run as a user runs them (`--remote sc://...` or $SPARK_REMOTE, paths
relative to the user's directory), the tables compared with a classic session's.

Each command runs in its own process: a process that talks to a Connect server builds Connect
plans for every function (pyspark's SPARK_CONNECT_MODE_ENABLED), so it cannot share the test
session's classic JVM.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from labelqa.api import RunContext, run_audit_job, write_report
from labelqa.config import load_config
from labelqa.sample import generate, write_sample
from tests.processes import free_port, kill, stop

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SPARK_HOME = Path(pyspark.__file__).parent
RUN_DATE = "2026-11-20"
AUDIT_TABLES = ("examples", "class_issues", "classes", "summary", "quarantine")

#: the audit with a failure injected after its tables were staged (as in test_production)
FAILING_AUDIT = """
import sys
import labelqa.api as api
def explode(*_):
    raise RuntimeError("injected failure after the tables were staged")
api.evaluate_gates = explode
from labelqa.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Spark Connect server on 127.0.0.1 (local[2]); its URL."""
    work = tmp_path_factory.mktemp("connect-server")
    port = free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "PYSPARK_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(work / "logs"),
           "SPARK_PID_DIR": str(work)}
    log = open(work / "server.log", "w")
    process = subprocess.Popen(
        [str(SPARK_HOME / "sbin/start-connect-server.sh"), "--wait", "--master", "local[2]",
         "--driver-memory", "2g", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
         "--conf", f"spark.connect.grpc.binding.port={port}"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                break
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(1)
    else:
        process.poll()
    if process.returncode is not None or time.time() >= deadline:
        kill([process])
        pytest.fail("the Spark Connect server did not start: " + (work / "server.log").read_text())
    yield f"sc://127.0.0.1:{port}"
    stop([process])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("connect-inputs")
    write_sample(generate(3_000, 6, 71), str(root / "labels"), str(root / "predictions"),
                 rows_per_file=700)
    # rows to quarantine: an id without predictions, a null id, a tag outside the classes
    pq.write_table(pa.table({"id": pa.array([10_000_000, None, 10_000_001], pa.int64()),
                             "labels": pa.array([[1], [2], [9]], pa.list_(pa.int32()))}),
                   root / "labels" / "part-bad.parquet")
    write_sample(generate(3_000, 6, 72), str(root / "labels2"), str(root / "predictions2"),
                 rows_per_file=700)
    return root


def _labelqa(cwd: Path, *arguments: str, remote: str | None = None,
             script: str | None = None) -> subprocess.CompletedProcess:
    """A labelqa command as a user runs it, in `cwd`, through `remote` given as
    $SPARK_REMOTE (a `--remote` in `arguments` works too)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYSPARK_", "SPARK_"))}
    if remote is not None:
        env["SPARK_REMOTE"] = remote
    command = [sys.executable, "-c", script, *arguments] if script else [
        sys.executable, "-m", "labelqa", *arguments]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


#: what differs between any two runs: the run's id and its clock
RUN_COLUMNS = ("run_id", "started_at", "finished_at")


def _tables(spark, output: Path, tables=AUDIT_TABLES) -> dict:
    out = {}
    for table in tables:
        df = spark.read.parquet(str(output / table))
        df = df.drop(*[c for c in RUN_COLUMNS if c in df.columns])
        for name, field in ((f.name, f) for f in df.schema.fields):
            if isinstance(field.dataType, T.MapType):  # a map's entries in no set order
                df = df.withColumn(name, F.array_sort(F.map_entries(name)))
        out[table] = sorted(map(str, df.collect()))
    return out


def _manifest(output: Path, dataset: str) -> dict:
    return json.loads((output / "_manifests" / f"dataset={dataset}" /
                       f"run_date={RUN_DATE}.json").read_text())


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _audit_arguments(labels: str, predictions: str, output: str, dataset: str) -> list[str]:
    return ["audit", "--labels", labels, "--predictions", predictions, "--output", output,
            "--dataset", dataset, "--run-date", RUN_DATE]


def test_an_audit_and_its_rerun_through_connect_equal_classic_mode(spark, server, inputs,
                                                                   tmp_path):
    classic = tmp_path / "classic"
    run_audit_job(spark, str(inputs / "labels"), str(inputs / "predictions"), str(classic),
                  load_config(None), RunContext("c", RUN_DATE, "classic"))
    user = tmp_path / "user"
    user.mkdir()
    (user / "in").symlink_to(inputs)
    # paths relative to the user's directory, which is not the server's
    first = _labelqa(user, *_audit_arguments("in/labels", "in/predictions", "out", "c"),
                     "--remote", server)
    assert first.returncode == 0, first.stderr
    expected = _tables(spark, classic)
    assert _tables(spark, user / "out") == expected
    manifest, classic_manifest = _manifest(user / "out", "c"), _manifest(classic, "c")
    assert manifest["status"] == "succeeded"
    assert manifest["rows"] == classic_manifest["rows"]  # every input row accounted for
    assert manifest["config"] == classic_manifest["config"]
    labels = manifest["rows"]["labels"]
    assert labels["rows"] == labels["audited"] + labels["quarantined"] + labels["collapsed"]
    assert labels["quarantined"] == 3  # the bad rows, quarantined the same way

    rerun = _labelqa(user, *_audit_arguments("in/labels", "in/predictions", "out", "c"),
                     remote=server)  # $SPARK_REMOTE this time
    assert rerun.returncode == 0, rerun.stderr
    assert _tables(spark, user / "out") == expected  # replaced, not appended
    assert _manifest(user / "out", "c")["run_id"] != manifest["run_id"]
    assert spark.read.parquet(str(user / "out" / "runs")).count() == 2
    assert not any((user / "out" / "_staging").glob("*"))


def test_a_failed_run_through_connect_leaves_the_previous_partitions_and_manifest(
        spark, server, inputs, tmp_path):
    output = tmp_path / "out"
    good = _labelqa(tmp_path, *_audit_arguments(str(inputs / "labels"),
                                                str(inputs / "predictions"), str(output), "f"),
                    remote=server)
    assert good.returncode == 0, good.stderr
    before = _snapshot(output)
    failed = _labelqa(tmp_path, *_audit_arguments(str(inputs / "labels2"),
                                                  str(inputs / "predictions2"), str(output),
                                                  "f"),
                      remote=server, script=FAILING_AUDIT)
    assert failed.returncode == 1
    assert "labelqa: failed: RuntimeError: injected failure after the tables were staged" in \
        failed.stderr
    assert _snapshot(output) == before  # nothing visible changed, no staging left behind


def test_report_and_register_through_connect(spark, server, inputs, tmp_path):
    output = tmp_path / "out"
    audited = _labelqa(tmp_path, *_audit_arguments(str(inputs / "labels"),
                                                   str(inputs / "predictions"), str(output),
                                                   "r"), remote=server)
    assert audited.returncode == 0, audited.stderr
    report = _labelqa(tmp_path, "report", "--output", "out", "--dataset", "r",
                      "--html", "report.html", remote=server)
    assert report.returncode == 0, report.stderr
    classic = write_report(spark, str(output), "r", None, str(tmp_path / "classic.html"))
    assert classic.endswith("classic.html")

    def without_clock(html: str) -> str:
        return re.sub(r"<dt>generated at</dt><dd>[^<]*</dd>|<footer>generated by labelqa · "
                      r"[^<]*</footer>", "", html)

    html = (tmp_path / "report.html").read_text()
    assert "<title>labelqa report: r 2026-11-20</title>" in html
    assert without_clock(html) == without_clock((tmp_path / "classic.html").read_text())
    registered = _labelqa(tmp_path, "register", "--output", "out", "--database", "lq",
                          remote=server)
    assert registered.returncode == 0, registered.stderr
    lines = dict(line.split(": ", 1) for line in registered.stdout.splitlines()
                 if ": " in line and not line.startswith(" "))
    assert lines["lq.examples"].startswith("1 partition(s) at file:" + str(output))
    refused = _labelqa(tmp_path, "register", "--output", "out", "--metastore", "m",
                       remote=server)
    assert refused.returncode == 2
    assert "register --remote: the tables go to the Spark Connect server's own catalog" in \
        refused.stderr


def test_predict_through_connect_equals_classic_mode(spark, server, tmp_path):
    from tests.test_predict import tagging_data, write_tables

    labels, features = write_tables(tmp_path, *tagging_data())
    for name, remote in (("classic", None), ("connect", server)):
        run = _labelqa(tmp_path, "predict", "--features", str(features), "--labels",
                       str(labels), "--output", name, "--run-date", RUN_DATE,
                       *(["--master", "local[2]"] if remote is None else []), remote=remote)
        assert run.returncode == 0, run.stderr
    tables = ("predictions", "model_quality")
    assert (_tables(spark, tmp_path / "connect", tables)
            == _tables(spark, tmp_path / "classic", tables))


def test_a_connect_server_that_does_not_answer_is_one_line(tmp_path):
    port = free_port()  # nothing listens there
    run = _labelqa(tmp_path, "report", "--output", "out", "--remote", f"sc://127.0.0.1:{port}")
    assert run.returncode == 1
    assert f"labelqa: error: the Spark Connect server at sc://127.0.0.1:{port} did not answer" \
        in run.stderr
    assert "Traceback" not in run.stderr
    both = _labelqa(tmp_path, "report", "--output", "out", "--remote", "sc://h:1",
                    "--master", "local[1]")
    assert both.returncode == 2
    assert "--master and --remote: a Spark Connect server has its own master" in both.stderr


def test_queue_reviews_and_export_through_connect_equal_classic_mode(spark, server, inputs,
                                                                     tmp_path):
    import pandas as pd

    from labelqa.cli import main

    outputs = {"classic": tmp_path / "classic", "connect": tmp_path / "connect"}
    for output in outputs.values():  # one audit each: reviews and export change the output
        run_audit_job(spark, str(inputs / "labels"), str(inputs / "predictions"), str(output),
                      load_config(None), RunContext("q", RUN_DATE, "same-run"))
    issues = pd.read_parquet(outputs["classic"] / "class_issues" / "dataset=q")
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text("id,class,verdict,reviewer\n" + "".join(
        f"{row.id},{row.class_index},{verdict},ann\n"
        for row, verdict in zip(issues.sort_values(["id", "class_index"]).head(4).itertuples(),
                                ("confirmed", "rejected", "confirmed", "confirmed"))))
    commands = (
        ("queue", "--output", "{out}", "--dataset", "q", "--budget", "25", "--to",
         "{out}-queue.csv"),
        ("reviews", "--output", "{out}", "--dataset", "q", "--reviews", str(verdicts)),
        ("export", "--output", "{out}", "--dataset", "q", "--to", "{out}-export"),
    )
    for command in commands:
        classic = [part.format(out=outputs["classic"]) for part in command]
        assert main([*classic, "--master", "local[2,2]"]) == 0, command[0]
        through = _labelqa(tmp_path, *[part.format(out=outputs["connect"]) for part in command],
                           remote=server)
        assert through.returncode == 0, through.stderr
    assert ((tmp_path / "connect-queue.csv").read_text()
            == (tmp_path / "classic-queue.csv").read_text())
    for name in ("classic", "connect"):
        assert (tmp_path / f"{name}-queue.csv").read_text().count("\n") > 25
    reviewed = ("reviews", "review_precision")
    assert (_tables(spark, outputs["connect"], reviewed)
            == _tables(spark, outputs["classic"], reviewed))
    def listing(root: Path) -> list[str]:  # Hadoop's local file system adds .crc files
        return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))

    exported = listing(tmp_path / "classic-export")
    assert listing(tmp_path / "connect-export") == exported
    documents = {name: json.loads((tmp_path / f"{name}-export" / "_export.json").read_text())
                 for name in outputs}
    for name, document in documents.items():
        assert document["run"].pop("output") == str(outputs[name])
    assert documents["connect"] == documents["classic"]
    for name in exported:
        path = tmp_path / "classic-export" / name
        if path.is_dir() and not name.startswith("_"):  # `_staging`: the export's, emptied
            assert (sorted(map(str, spark.read.parquet(str(tmp_path / "connect-export" /
                                                            name)).collect()))
                    == sorted(map(str, spark.read.parquet(str(path)).collect()))), name

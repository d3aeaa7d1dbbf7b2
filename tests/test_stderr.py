"""What a user sees on stderr without --verbose: a normal run and each documented error print
no Java stack trace, no Python traceback and no warning repeated per query.

The runs happen in one fresh process, one after the other (one JVM start): the JVM writes
to the real stderr of the process that started it, which the tests' own session hides.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from labelqa.sample import generate, label_table, prediction_table
from tests.test_malformed import CASES, FAST, SAMPLE

#: A Java stack frame, or the first line of a Java exception ("java.io.FileNotFound...").
JAVA_TRACE = re.compile(r"^\s+at [\w$.<>/]+\(.*\)\s*$"
                        r"|^(Caused by: )?[a-z]\w*(\.\w+)+\.[A-Z]\w*(Exception|Error)\b", re.M)
NOISE = ("Traceback", "WindowExec", "JAVA_GATEWAY_EXITED", "py4j", "FutureWarning")

RUNNER = """
import json, sys
from labelqa.cli import main
for number, argv in enumerate(json.load(open(sys.argv[1]))):
    print(f"@@run {number}", file=sys.stderr, flush=True)
    code = main(argv)
    sys.stderr.flush()
    print(f"@@exit {number} {code}", flush=True)
print("@@run end", file=sys.stderr, flush=True)
"""


def _inputs(folder: Path, labels, predictions) -> list[str]:
    folder.mkdir(parents=True)
    pq.write_table(labels, str(folder / "labels.parquet"))
    pq.write_table(predictions, str(folder / "predictions.parquet"))
    return ["--labels", str(folder / "labels.parquet"),
            "--predictions", str(folder / "predictions.parquet")]


def _runs(root: Path, everything: bool) -> list[tuple[str, list[str], int]]:
    """(what, argv, expected exit status) of a user's first runs and documented errors."""
    good = _inputs(root / "good", label_table(SAMPLE), prediction_table(SAMPLE))
    out = ["--output", str(root / "out"), "--dataset", "d", "--run-date", "2026-11-02", *FAST]
    other = generate(300, 4, 41, string_ids=True)
    corrupt = root / "corrupt"
    corrupt.mkdir()
    pq.write_table(label_table(SAMPLE), str(corrupt / "part-0.parquet"))
    (corrupt / "part-1.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    verdicts = root / "verdicts.csv"
    verdicts.write_text("id,class,verdict\n0,0,maybe\n")
    run = ["--output", str(root / "out"), "--dataset", "d", "--master", "local[2,2]"]
    runs = [
        ("first audit into a new output directory", ["audit", *good, *out], 0),
        ("the same audit again", ["audit", *good, *out], 0),
        ("report", ["report", "--output", str(root / "out"), "--dataset", "d",
                    "--html", str(root / "r.html"), "--master", "local[2,2]"], 0),
        ("wrong --labels path",
         ["audit", "--labels", str(root / "nope"), *good[2:], *out], 2),
        ("a labels file that is not Parquet",
         ["audit", "--labels", str(corrupt), *good[2:], *out], 2),
        ("a dataset with the other id type",
         ["audit", *_inputs(root / "strings", label_table(other), prediction_table(other)),
          *out[:2], "--dataset", "e", *out[4:]], 2),
        ("a bad Spark setting",
         ["audit", *good, *out, "--set", "spark.conf.spark.driver.memory=lots"], 2),
        ("a review queue", ["queue", *run, "--budget", "5", "--to", str(root / "q.csv")], 0),
        ("a queue whose minimum does not fit the budget",
         ["queue", *run, "--budget", "1", "--min-per-class", "3", "--to",
          str(root / "q2.csv")], 2),
        ("a corrected label table", ["export", *run, "--to", str(root / "export")], 0),
        ("a reviews file with a bad verdict", ["reviews", *run, "--reviews", str(verdicts)], 2),
        ("a queue of a dataset that was never audited",
         ["queue", *run[:3], "nothing", *run[4:], "--budget", "5", "--to",
          str(root / "q3.csv")], 2),
    ]
    chosen = CASES if everything else [c for c in CASES if c.name in (
        "fail policy stops at the first bad row", "every probability given as a percentage",
        "missing column")]
    for number, case in enumerate(c for c in chosen if c.exit_code):
        labels, predictions = case.change(label_table(SAMPLE), prediction_table(SAMPLE))
        argv = ["audit", *_inputs(root / f"case{number}", labels, predictions), *out]
        for override in case.overrides:
            argv += ["--set", override]
        runs.append((case.name, argv, case.exit_code))
    return runs


@pytest.mark.parametrize("everything", [
    pytest.param(False, id="first runs and common errors"),
    pytest.param(True, id="every documented error", marks=pytest.mark.slow)])
def test_no_java_stack_trace_on_stderr(tmp_path, everything):
    runs = _runs(tmp_path, everything)
    (tmp_path / "runs.json").write_text(json.dumps([argv for _, argv, _ in runs]))
    (tmp_path / "runner.py").write_text(RUNNER)
    result = subprocess.run([sys.executable, str(tmp_path / "runner.py"),
                             str(tmp_path / "runs.json")], capture_output=True, text=True,
                            timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    codes = dict(re.findall(r"^@@exit (\d+) (\d+)$", result.stdout, re.M))
    chunks = re.split(r"^@@run \S+$", result.stderr, flags=re.M)[1:-1]
    assert len(chunks) == len(runs)
    for number, ((what, _, expected), chunk) in enumerate(zip(runs, chunks)):
        assert int(codes[str(number)]) == expected, (what, chunk[-2000:])
        trace = JAVA_TRACE.search(chunk)
        assert trace is None, (what, chunk[max(0, trace.start() - 500):trace.end() + 500])
        assert not [n for n in NOISE if n in chunk], (what, chunk[-2000:])
        if expected:
            assert chunk.strip().splitlines()[-1].startswith("labelqa: error: "), (what, chunk)

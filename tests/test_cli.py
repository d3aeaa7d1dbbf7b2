"""The command line: exit codes, one-line errors naming table, column, rule and an id."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from labelqa.cli import main
from labelqa.sample import generate, write_sample
from tests.conftest import bare_environment

FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4"]


@pytest.fixture(scope="module")
def good_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    sample = generate(400, 4, 5)
    write_sample(sample, str(root / "labels.parquet"), str(root / "predictions.parquet"))
    return root, sample


def _audit(labels, predictions, output, *extra):
    return main(["audit", "--labels", str(labels), "--predictions", str(predictions),
                 "--output", str(output), "--dataset", "t", "--run-date", "2026-11-01",
                 *FAST, *extra])


def test_successful_audit_writes_every_table_and_the_manifest(spark, good_inputs, tmp_path,
                                                              capsys):
    root, sample = good_inputs
    assert _audit(root / "labels.parquet", root / "predictions.parquet", tmp_path) == 0
    printed = capsys.readouterr().out
    assert "audited 400 examples x 4 classes" in printed
    for table in ("examples", "class_issues", "classes", "summary"):
        assert (tmp_path / table / "dataset=t" / "run_date=2026-11-01").is_dir()
    manifest = json.loads((tmp_path / "_manifests/dataset=t/run_date=2026-11-01.json").read_text())
    assert manifest["status"] == "succeeded"
    assert manifest["rows"]["audited_examples"] == manifest["rows"]["labels"]["rows"] == 400
    assert manifest["rows"]["predictions"] == {"rows": 400, "audited": 400, "quarantined": 0,
                                               "collapsed": 0, "reasons": {},
                                               "repeated_tags": 0}
    summary = spark.read.parquet(str(tmp_path / "summary")).first()
    examples = spark.read.parquet(str(tmp_path / "examples"))
    assert summary["num_examples"] == examples.count() == 400
    assert summary["num_label_issues"] == examples.filter("is_label_issue").count()
    assert summary["overall_health_score"] == 1 - summary["num_label_issues"] / 400


def test_missing_path_and_bad_arguments_exit_2(spark, tmp_path, capsys):
    assert _audit(tmp_path / "nope", tmp_path / "nope2", tmp_path / "out") == 2
    assert "labels: cannot read Parquet at" in capsys.readouterr().err
    assert main(["audit", "--labels", "a", "--predictions", "b", "--output", "c",
                 "--run-date", "2026-13-01"]) == 2
    assert "is not a date" in capsys.readouterr().err
    assert main(["audit", "--labels", "a"]) == 2


def test_class_names_must_match_k(spark, good_inputs, tmp_path, capsys):
    root, _ = good_inputs
    code = _audit(root / "labels.parquet", root / "predictions.parquet", tmp_path,
                  "--set", "classes=[a, b, c]")
    assert code == 2
    assert "classes: 3 class names, but the pred_probs arrays have length K=4" in \
        capsys.readouterr().err


def test_the_printed_spark_sql_line_runs_without_the_virtual_environment_on_path(tmp_path):
    """`register` prints it; a user pastes it into a shell whose PATH lacks .venv/bin."""
    from labelqa.cli import spark_sql_command
    from labelqa.spark.catalog import embedded_metastore_conf

    line = spark_sql_command(embedded_metastore_conf(str(tmp_path / "metastore")))
    assert shlex.split(line)[0].endswith("/pyspark/bin/spark-sql")
    assert f"spark.sql.warehouse.dir={tmp_path}/metastore/warehouse" in shlex.split(line)
    result = subprocess.run(["bash", "-c", f"{line} --version"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120, env=bare_environment())
    assert result.returncode == 0, result.stderr
    assert "version" in result.stderr + result.stdout


# --help: every subcommand's options explained in the user's words, defaults shown (no Spark).

def _subcommands():
    import argparse

    from labelqa.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


@pytest.mark.parametrize("command", [None, "audit", "demo", "register", "report", "export",
                                     "queue", "reviews"])
def test_help_exits_0_and_explains_every_option(command, capsys):
    parser, choices = _subcommands()
    target = parser if command is None else choices[command]
    with pytest.raises(SystemExit) as stopped:
        main(([] if command is None else [command]) + ["--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert "contract" not in text.lower()
    for action in target._actions:
        if not action.option_strings:
            continue
        assert action.help, f"{command} {action.option_strings}: no help text"
        assert "contract" not in action.help.lower()
        default = action.default
        if default not in (None, False, [], "==SUPPRESS==") and not action.required:
            assert f"default: {default}" in " ".join(text.split()), (command, action.dest)
    for name, helped in (("audit", "--labels"), ("register", "--database")):
        if command == name:
            assert helped in text


def test_help_shows_the_defaults(capsys):
    for command, expected in (("audit", "(default: default)"), ("demo", "(default: demo-output)"),
                              ("register", "(default: labelqa)"), ("report", "(default: 25)")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert expected in " ".join(capsys.readouterr().out.split()), command

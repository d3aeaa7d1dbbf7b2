"""labelqa: audit, predict, demo, register, report, export, queue and reviews.

A thin layer: parse arguments, load the config, build the session, call labelqa.api.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import re
import shlex
import sys
import traceback
import uuid
from collections.abc import Sequence

from labelqa.errors import ConfigError, GateFailed, LabelqaError
from labelqa.progress import redact_uri

log = logging.getLogger("labelqa")


def _run_date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _dataset(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: use letters, digits, '_', '-' or '.' (it names a directory)")
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors are configuration errors: exit 2
        self.print_usage(sys.stderr)
        raise ConfigError(message)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default after its help, unless the help already names it or there is
    none to show (required options, flags, options whose default is computed at run time)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or action.default in (None, False, [],
                                                                       argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="labelqa", description=__doc__.splitlines()[0],
                     formatter_class=_HelpFormatter)
    parser.add_argument("--verbose", action="store_true",
                        help="log every step, Spark's INFO log and stack traces")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    audit = commands.add_parser(
        "audit", formatter_class=_HelpFormatter,
        help="audit a label table against model predictions",
        description="Audit a label table against a model's out-of-sample predicted "
                    "probabilities; write the examples, class_issues, classes, summary and "
                    "quarantine tables under --output.")
    audit.add_argument("--labels", required=True,
                       help="the label table: Parquet file, directory or glob, or table:NAME "
                            "for a catalog table (format: input.labels_format)")
    source = audit.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions",
                        help="the prediction table: Parquet file, directory or glob, or "
                             "table:NAME (format: input.predictions_format)")
    source.add_argument("--features",
                        help="instead of --predictions: a features table (id and a vector, "
                             "model.*; a path or table:NAME); labelqa predict makes the "
                             "out-of-fold probabilities first and writes its tables too")
    audit.add_argument("--output", required=True, help="output directory (local or any "
                                                       "Hadoop filesystem URI)")
    audit.add_argument("--config", help="YAML file of settings (every key with its default: "
                                        "conf/audit.yaml; default: the built-in defaults)")
    audit.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="override one config key, value read as YAML; repeatable, e.g. "
                            "--set input.labels_format=long --set "
                            "issues.filter_by=confident_learning")
    audit.add_argument("--dataset", default="default", type=_dataset,
                       help="dataset name: the outputs' dataset= partition")
    audit.add_argument("--run-date", type=_run_date,
                       help="YYYY-MM-DD, the outputs' run_date= partition (default: today, UTC)")
    audit.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    _remote_argument(audit)
    audit.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="log every step, Spark's INFO log and stack traces")
    predict = commands.add_parser(
        "predict", formatter_class=_HelpFormatter,
        help="out-of-fold predicted probabilities from a features table",
        description="Fit one logistic regression per class and fold (K-fold cross-validation, "
                    "folds from the ids) on a features table and a label table; write the "
                    "out-of-fold probabilities (predictions: id, pred_probs, fold), each "
                    "class's held-out quality (model_quality) and predict_quarantine under "
                    "--output. labelqa audit reads the predictions table as it is.")
    predict.add_argument("--features", required=True,
                         help="the features table (Parquet path or table:NAME) with the id and "
                              "an array or MLlib vector column (model.features_column), or "
                              "numeric columns (model.feature_columns)")
    predict.add_argument("--labels", required=True,
                         help="the label table: a path or table:NAME (format: "
                              "input.labels_format)")
    predict.add_argument("--output", required=True, help="output directory (local or any "
                                                         "Hadoop filesystem URI)")
    predict.add_argument("--config", help="YAML file of settings (conf/audit.yaml: the "
                                          "model section)")
    predict.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE", help="override one config key, value read as "
                                                   "YAML; repeatable, e.g. --set model.folds=10")
    predict.add_argument("--dataset", default="default", type=_dataset,
                         help="dataset name: the outputs' dataset= partition")
    predict.add_argument("--run-date", type=_run_date,
                         help="YYYY-MM-DD, the outputs' run_date= partition (default: today, "
                              "UTC)")
    predict.add_argument("--master", help="Spark master (default: spark-submit's, else "
                                          "local[*])")
    _remote_argument(predict)
    predict.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log every step, Spark's INFO log and stack traces")
    demo = commands.add_parser(
        "demo", formatter_class=_HelpFormatter, help="run the audit on a generated sample",
        description="Generate a tagging sample with injected annotation errors, audit it on "
                    "Spark and print what was found.")
    demo.add_argument("--output", default="demo-output",
                      help="directory for the sample and the audit's outputs")
    demo.add_argument("--master", help="Spark master (default: local[*])")
    demo.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                      help="log every step, Spark's INFO log and stack traces")

    register = commands.add_parser(
        "register", formatter_class=_HelpFormatter,
        help="put the output tables in a Spark catalog (<database>.examples, ...)",
        description="Register the audit's output tables in a Spark catalog as external "
                    "Parquet tables (the data is not moved); rerun after each audit.")
    register.add_argument("--output", required=True, help="the audit's output directory")
    register.add_argument("--database", default="labelqa", type=_database,
                          help="catalog database that holds the tables")
    register.add_argument("--metastore", help="directory of an embedded Hive metastore "
                          "(default: labelqa-metastore, unless the Spark settings name a "
                          "catalog, e.g. spark.hadoop.hive.metastore.uris)")
    _spark_arguments(register)

    report = commands.add_parser(
        "report", formatter_class=_HelpFormatter,
        help="write one run's self-contained HTML report",
        description="Write one run's self-contained HTML report (no script, no network "
                    "resource).")
    report.add_argument("--output", required=True, help="the audit's output directory")
    report.add_argument("--dataset", default="default", type=_dataset,
                        help="the audited dataset's name (audit --dataset)")
    report.add_argument("--run-date", type=_run_date, help="YYYY-MM-DD (default: the "
                                                           "dataset's latest run)")
    report.add_argument("--html", help="where to write the report (default: "
                                       "OUTPUT/_reports/dataset=NAME/run_date=DATE.html)")
    report.add_argument("--max-examples", type=_positive, default=25,
                        help="how many of the worst examples the report lists")
    _spark_arguments(report)

    export = commands.add_parser(
        "export", formatter_class=_HelpFormatter,
        help="write the corrected label table and the changes made",
        description="Write the audited label table with the suggested tags applied "
                    "(PATH/labels), the changes table (PATH/changes) and the counts "
                    "(PATH/_export.json); reviewers' confirmed verdicts are applied, "
                    "rejected ones never.")
    _run_arguments(export)
    export.add_argument("--to", required=True, help="directory to write the export to")
    export.add_argument("--labels", help="the label table the run audited (default: the "
                                         "path in the run's manifest)")
    export.add_argument("--labels-format", choices=("array", "long", "onehot"),
                        help="format of the corrected table (default: the input's)")
    export.add_argument("--apply", choices=("flagged", "none"), default="flagged",
                        help="apply the suggested tags of every flagged example, or only "
                             "the reviewers' confirmed ones")
    export.add_argument("--max-changes", type=_positive, help="apply the changes of the "
                        "most severe examples, taken whole, up to this many changes")
    _spark_arguments(export)

    reviews = commands.add_parser(
        "reviews", formatter_class=_HelpFormatter,
        help="store reviewers' verdicts on a run's findings and measure their precision",
        description="Read reviewers' verdicts (a CSV of id, class, verdict, optional "
                    "reviewer; or a Label Studio JSON export), store them in the reviews "
                    "table and write the findings' precision (review_precision, the runs "
                    "history).")
    _run_arguments(reviews)
    reviews.add_argument("--reviews", required=True, help="the verdicts file (.csv or .json)")
    reviews.add_argument("--format", choices=("csv", "label-studio"),
                         help="the file's format (default: from its extension, .csv or "
                              ".json)")
    _spark_arguments(reviews)

    queue = commands.add_parser(
        "queue", formatter_class=_HelpFormatter,
        help="write the flagged examples to verify first, for human review",
        description="Write the --budget flagged examples of one run to verify first, in issue "
                    "order with at least --min-per-class of each class with issues, joined "
                    "with the --data columns reviewers see (CSV, Parquet or Label Studio "
                    "tasks).")
    _run_arguments(queue)
    queue.add_argument("--budget", required=True, type=_positive,
                       help="how many examples to queue")
    queue.add_argument("--min-per-class", type=int, default=0,
                       help="queue at least this many examples of each class with issues")
    queue.add_argument("--data", help="Parquet table of what reviewers see, by the run's id "
                                      "column (image URLs, texts)")
    queue.add_argument("--data-columns", type=lambda text: tuple(
        c.strip() for c in text.split(",") if c.strip()),
                       help="comma-separated columns of --data to show, e.g. image_url,caption")
    queue.add_argument("--to", required=True, help="where to write the queue (a file; a "
                                                   "directory for parquet)")
    queue.add_argument("--format", default="csv", choices=("csv", "parquet", "label-studio"),
                       help="label-studio: task import JSON, plus TO.label_config.xml")
    _spark_arguments(queue)
    return parser


def _run_arguments(command: argparse.ArgumentParser) -> None:
    """The run a command acts on."""
    command.add_argument("--output", required=True, help="the audit's output directory")
    command.add_argument("--dataset", default="default", type=_dataset,
                         help="the audited dataset's name (audit --dataset)")
    command.add_argument("--run-date", type=_run_date, help="YYYY-MM-DD (default: the "
                                                            "dataset's latest run)")


def _remote_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--remote", metavar="sc://HOST:PORT",
                         help="run through a Spark Connect server (default: $SPARK_REMOTE; "
                              "local paths must be the server's too)")


#: the arguments that name a file or directory: made absolute for a Spark Connect server,
#: whose working directory is not this process's
PATH_ARGUMENTS = ("labels", "predictions", "features", "output", "html", "to", "reviews",
                  "data")


def _session_for(args: argparse.Namespace, conf: dict[str, str], app_name: str):
    """The run's session: classic, or Spark Connect with --remote or $SPARK_REMOTE (then every
    local path argument made absolute here, once)."""
    from labelqa.spark.inputs import catalog_name
    from labelqa.spark.session import build_session, connect_url

    remote = connect_url(getattr(args, "remote", None), args.master)
    if remote is not None:
        for name in PATH_ARGUMENTS:
            value = getattr(args, name, None)
            if isinstance(value, str) and "://" not in value and catalog_name(value) is None:
                setattr(args, name, os.path.abspath(value.removeprefix("file:")))
    return build_session(args.master, conf, app_name, remote=remote)


def _spark_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", help="YAML file; only its spark settings are used "
                                          "(default: the built-in defaults)")
    command.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE",
                         help="override one config key, value read as YAML; repeatable, e.g. "
                              "spark.conf.spark.driver.memory=4g")
    command.add_argument("--master", help="Spark master (default: spark-submit's, else "
                                          "local[*])")
    _remote_argument(command)
    command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log every step, Spark's INFO log and stack traces")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _database(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits and '_'")
    return text


#: Spark settings that mean the user chose a catalog themselves.
CATALOG_SETTINGS = ("spark.sql.catalogImplementation", "spark.hadoop.hive.metastore.uris",
                    "spark.hadoop.javax.jdo.option.ConnectionURL")


def _register(args: argparse.Namespace) -> int:
    from labelqa.config import load_config
    from labelqa.spark.catalog import embedded_metastore_conf, register_tables
    from labelqa.spark.session import connect_url, under_spark_submit

    config = load_config(args.config, args.overrides)
    conf = dict(config.spark.conf)
    remote = connect_url(args.remote, args.master)
    if remote is not None and args.metastore is not None:
        raise ConfigError("register --remote: the tables go to the Spark Connect server's own "
                          "catalog; --metastore names a local embedded one: drop one of them")
    # through Spark Connect, the server's catalog (its catalog settings are its own)
    chosen = remote is not None or any(key in conf for key in CATALOG_SETTINGS) or (
        under_spark_submit() and args.metastore is None)
    embedded = None if chosen else embedded_metastore_conf(args.metastore
                                                           or "labelqa-metastore")
    spark = _session_for(args, {**(embedded or {}), **conf}, config.spark.app_name)
    registered = register_tables(spark, args.output, args.database)
    for table in registered:
        print(f"{table.name}: {table.partitions} partition(s) at {redact_uri(table.location)}")
    if embedded is not None:
        print(f"catalog: embedded Hive metastore in {args.metastore or 'labelqa-metastore'}; "
              f"query it with:\n  {spark_sql_command(embedded)}")
    return 0


def spark_sql_command(settings: dict[str, str]) -> str:
    """A shell line that opens spark-sql on `settings`, from any directory and PATH: the
    spark-sql of the installed pyspark, by its absolute path (pip's `bin/spark-sql` wrapper
    finds its Spark only when the virtual environment's python is first on PATH)."""
    import pyspark

    executable = os.path.join(os.path.dirname(os.path.abspath(pyspark.__file__)), "bin",
                              "spark-sql")
    parts = [executable] + [x for key, value in settings.items()
                            for x in ("--conf", f"{key}={value}")]
    return " ".join(shlex.quote(part) for part in parts)


def _report(args: argparse.Namespace) -> int:
    from labelqa.api import write_report
    from labelqa.config import load_config

    config = load_config(args.config, args.overrides)
    spark = _session_for(args, dict(config.spark.conf), config.spark.app_name)
    path = write_report(spark, args.output, args.dataset, args.run_date, args.html,
                        max_examples=args.max_examples)
    print(f"report: {redact_uri(path)}")
    return 0


def _session(args: argparse.Namespace):
    from labelqa.config import load_config

    config = load_config(args.config, args.overrides)
    return _session_for(args, dict(config.spark.conf), config.spark.app_name)


def _export(args: argparse.Namespace) -> int:
    from labelqa.act.export import ExportOptions, export
    from labelqa.act.findings import read_findings

    spark = _session(args)
    findings = read_findings(spark, args.output, args.dataset, args.run_date)
    counts = export(spark, findings, ExportOptions(args.to, args.labels, args.labels_format,
                                                   args.apply, args.max_changes))
    changes, rows = counts["changes"], counts["rows"]
    print(f"exported dataset={findings.dataset} run_date={findings.run_date}: "
          f"{changes['applied']} change(s) ({changes['added']} added, {changes['removed']} "
          f"removed) in {counts['examples']['changed']} example(s); {changes['rejected']} "
          f"blocked by rejected verdicts")
    print(f"rows: {rows['in']} in, {rows['out']} out; " + "; ".join(counts["reconciled"]))
    print(f"labels: {redact_uri(args.to.rstrip('/'))}/labels ({counts['labels_format']})")
    return 0


def _reviews(args: argparse.Namespace) -> int:
    from labelqa.act.findings import read_findings
    from labelqa.act.reviews import describe, record_reviews

    spark = _session(args)
    findings = read_findings(spark, args.output, args.dataset, args.run_date)
    report = record_reviews(spark, findings, args.reviews, args.format)
    for line in describe(report, findings):
        print(line)
    return 0


def _queue(args: argparse.Namespace) -> int:
    from labelqa.act.queue import QueueRequest, build_queue, describe, write_queue

    request = QueueRequest(args.budget, args.min_per_class, args.data,
                           args.data_columns or ())
    spark = _session(args)
    queue = build_queue(spark, args.output, args.dataset, args.run_date, request)
    written = write_queue(spark, queue, args.to, args.format)
    print(f"{describe(queue, request.budget, request.min_per_class)}: "
          f"{', '.join(redact_uri(p) for p in written)}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from labelqa.api import RunContext, run_audit_job, utc_now
    from labelqa.config import load_config
    from labelqa.spark.session import set_log_level

    config = load_config(args.config, args.overrides)
    run_date = args.run_date or utc_now().date().isoformat()
    spark = _session_for(args, dict(config.spark.conf), config.spark.app_name)
    if getattr(args, "verbose", False):
        set_log_level(spark, verbose=True)
    run = RunContext(args.dataset, run_date, uuid.uuid4().hex)
    try:
        if args.features is not None:
            report = _audit_features(spark, args, config, run)
        else:
            from labelqa.prediction import model_notes_for

            report = run_audit_job(spark, args.labels, args.predictions, args.output, config,
                                   run, model_notes_for(spark, args.predictions))
    except GateFailed as failed:
        _print_report(failed.report)
        raise
    _print_report(report)
    return 0


def _audit_features(spark, args: argparse.Namespace, config, run):
    """`audit --features`: predict, then audit the predictions just written, in one job."""
    import dataclasses

    from labelqa.api import run_audit_job
    from labelqa.prediction import run_predict_job, weak_class_notes

    if config.input.id_column != "id":
        raise ConfigError("audit --features: the predictions table's id column is `id`; "
                          f"rename input.id_column={config.input.id_column!r} to id, or run "
                          "labelqa predict and audit --predictions separately")
    predicted = run_predict_job(spark, args.labels, args.features, args.output, config, run)
    _print_prediction(predicted)
    # the audit reads the predictions table as written: array format, named classes, `id`
    audited = dataclasses.replace(
        config, classes=tuple(q.class_name for q in predicted.quality), classes_path=None,
        input=dataclasses.replace(config.input, predictions_format="array",
                                  predictions_column="pred_probs"))
    return run_audit_job(spark, args.labels, predicted.predictions_path, args.output, audited,
                         dataclasses.replace(run, run_id=uuid.uuid4().hex),
                         weak_class_notes(predicted.quality),
                         {"features": redact_uri(args.features)})


def _predict(args: argparse.Namespace) -> int:
    from labelqa.api import RunContext, utc_now
    from labelqa.config import load_config
    from labelqa.prediction import run_predict_job
    from labelqa.spark.session import set_log_level

    config = load_config(args.config, args.overrides)
    run_date = args.run_date or utc_now().date().isoformat()
    spark = _session_for(args, dict(config.spark.conf), config.spark.app_name)
    if getattr(args, "verbose", False):
        set_log_level(spark, verbose=True)
    _print_prediction(run_predict_job(spark, args.labels, args.features, args.output, config,
                                      RunContext(args.dataset, run_date, uuid.uuid4().hex)))
    return 0


def _print_prediction(record) -> None:
    mean = record.mean_auc
    print(f"predicted {record.num_examples} examples x {record.num_classes} classes from "
          f"{record.num_features} features: {record.evaluations} passes, mean held-out ROC "
          f"AUC {'n/a' if mean is None else f'{mean:.4f}'}")
    print(f"rows: labels {record.labels.rows} in, {record.labels.quarantined} quarantined; "
          f"features {record.features.rows} in, {record.features.quarantined} quarantined")
    print(f"predictions: {redact_uri(record.predictions_path)}")
    print(f"manifest: {redact_uri(record.manifest)}")
    for line in record.warnings:
        print(f"labelqa: warning: {line}", file=sys.stderr)


def _print_report(report) -> None:
    print(f"audited {report.num_examples} examples x {report.num_classes} classes: "
          f"{report.num_label_issues} label issues, health {report.overall_health_score:.4f}")
    print(report.comparison_text)
    print(f"outputs: {redact_uri(report.output)} (dataset={report.dataset}, "
          f"run_date={report.run_date})")
    print(f"manifest: {redact_uri(report.manifest)} (status {report.status})")
    if report.separation_warning is not None:
        print(f"labelqa: warning: {report.separation_warning}", file=sys.stderr)


def _demo(args: argparse.Namespace) -> int:
    from labelqa.demo import run_demo

    run_demo(args.output, args.master)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    verbose = "--verbose" in (argv if argv is not None else sys.argv[1:])
    # one line per stage on stderr; details (and Spark's own INFO log) with --verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("labelqa").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
        commands = {"audit": _audit, "predict": _predict, "demo": _demo,
                    "register": _register, "report": _report, "export": _export,
                    "queue": _queue, "reviews": _reviews}
        return commands[args.command](args)
    except LabelqaError as error:
        if verbose:
            traceback.print_exc()
        print(f"labelqa: error: {error}", file=sys.stderr)
        return error.exit_code
    except Exception as error:  # noqa: BLE001 - the last line of defence of a scheduled job
        if verbose:
            traceback.print_exc()
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"labelqa: failed: {type(error).__name__}: {first_line}", file=sys.stderr)
        if not verbose:
            print("labelqa: rerun with --verbose for the stack trace", file=sys.stderr)
        return 1

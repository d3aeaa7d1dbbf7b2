"""Build (or join) the SparkSession a run uses."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import SparkSession

from labelqa.config import redact_setting
from labelqa.errors import ConfigError, LabelqaError
from labelqa.spark.driver import set_log_levels

#: Settings labelqa applies unless the config's `spark.conf` says otherwise.
DEFAULT_SPARK_CONF = {
    # local mode runs the executors in the driver JVM too; labelqa's caches live on disk
    # (labelqa.spark.caching), so this stays enough as N grows (README: Benchmarks)
    "spark.driver.memory": "2g",
    # a floor: the intake sizes its exchange to spark.sql.adaptive.advisoryPartitionSizeInBytes
    "spark.sql.shuffle.partitions": "16",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
}


#: Spark loggers that print a Java stack trace (or a warning per query) on a normal run or a
#: normal error, and the level they are kept at without --verbose: FileStreamSink traces
#: every read of a path that does not exist yet (the first run's history, a wrong --labels
#: path, which labelqa reports in one line); a failed task (a corrupt input file, reported in
#: one line too) is traced by the executor (local mode: in this JVM) and by "Lost task".
QUIET_LOGGERS = {
    "org.apache.spark.sql.execution.streaming.sinks.FileStreamSink": "ERROR",
    "org.apache.spark.sql.execution.streaming.FileStreamSink": "ERROR",
    "org.apache.spark.sql.execution.window.WindowExec": "ERROR",
    "org.apache.spark.scheduler.TaskSetManager": "ERROR",
    "org.apache.spark.executor.Executor": "OFF",
}


def set_log_level(spark: SparkSession, verbose: bool) -> None:
    """Spark's own log: warnings and errors without Java stack traces; with --verbose
    everything from INFO (labelqa's stage lines are its own logger's)."""
    set_log_levels(spark, "INFO" if verbose else "WARN",
                   {name: "INFO" if verbose else quiet for name, quiet in QUIET_LOGGERS.items()})


@dataclass(frozen=True)
class SessionSettings:
    """Session settings a step changed, and what they were: `restore()` leaves the caller's
    session as it was found (a setting that was unset is unset again)."""

    spark: SparkSession
    previous: Mapping[str, str | None]

    @classmethod
    def apply(cls, spark: SparkSession, settings: Mapping[str, str]) -> SessionSettings:
        previous = {key: spark.conf.get(key, None) for key in settings}
        for key, value in settings.items():
            spark.conf.set(key, value)
        return cls(spark, previous)

    def also(self, settings: Mapping[str, str]) -> SessionSettings:
        """These settings and `settings`, the latter set now: `restore()` still returns every
        key to the caller's value, not to this step's."""
        more = SessionSettings.apply(self.spark, settings)
        return SessionSettings(self.spark, {**more.previous, **self.previous})

    def restore(self) -> None:
        for key, value in self.previous.items():
            if value is None:
                self.spark.conf.unset(key)
            else:
                self.spark.conf.set(key, value)


def _gateway_error(conf: dict[str, str]) -> LabelqaError:
    """Spark's JVM exited before it started: a setting it could not take (Java's own message
    is above on stderr), or no Java."""
    if conf:
        settings = ", ".join(f"spark.conf.{key}={redact_setting(key, value)}"
                             for key, value in conf.items())
        return ConfigError(f"spark.conf: Spark's JVM did not start with these settings: "
                           f"{settings} (Java's message is above); correct or remove the "
                           "one it names")
    return LabelqaError("Spark's JVM did not start (Java's message is above): labelqa needs "
                        "Java 17, as JAVA_HOME or java on PATH")


def under_spark_submit() -> bool:
    """spark-submit starts the Python driver with a gateway to its own JVM."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


#: retries of a run's first call to a Spark Connect server (backoff 0.05 s x 4 per retry,
#: at most 10 s): about 25 s in all
CONNECT_FIRST_CALL_RETRIES = 6


def connect_url(remote: str | None, master: str | None = None) -> str | None:
    """The Spark Connect server a run uses: --remote, else $SPARK_REMOTE, else none (a
    classic session)."""
    url = remote or os.environ.get("SPARK_REMOTE") or None
    if url is None:
        return None
    if not url.startswith("sc://"):
        raise ConfigError(f"--remote {url!r}: a Spark Connect address is sc://HOST:PORT")
    if master:
        raise ConfigError("--master and --remote: a Spark Connect server has its own master; "
                          "give one of them")
    return url


def connect_session(url: str, conf: Mapping[str, str]) -> SparkSession:
    """A Spark Connect session on `url`, with every runtime setting of the defaults and
    `conf` applied; a setting of `conf` that only the server can set is reported, not lost."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError as error:
        raise ConfigError(f"--remote needs Spark Connect's client libraries ({error.name} is "
                          "missing): pip install 'labelqa[connect]'") from None
    # what pyspark's own builder sets: functions, Column and Window build Connect plans
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    from pyspark.sql.connect.client.retries import DefaultPolicy

    # no builder options: they would be the first call, with the default retries (the
    # application's name is the server's anyway)
    spark = ConnectSession.builder.remote(url).getOrCreate()
    client = spark.client
    policies = client.get_retry_policies()
    # the first call: a server that is not there is reported in ~25 s, not after the default
    # policy's 10 minutes; the run itself keeps the default retries
    client.set_retry_policies([DefaultPolicy(max_retries=CONNECT_FIRST_CALL_RETRIES,
                                             max_backoff=10_000)])
    try:
        with warnings.catch_warnings():  # pyspark warns of each exhausted retry policy
            warnings.simplefilter("ignore")
            spark.version  # noqa: B018 - the first call reaches the server
    except Exception as error:  # noqa: BLE001 - gRPC's own errors: unreachable, refused
        client.close()  # nothing left to release at exit
        text = str(error).strip()
        reason = re.search(r"details = \"([^\"]*)\"", text)
        first = reason.group(1) if reason else (text.splitlines()[0] if text
                                                 else type(error).__name__)
        raise LabelqaError(f"the Spark Connect server at {url} did not answer: {first}"
                           ) from None
    client.set_retry_policies(policies)
    ignored = []
    for key, value in {**DEFAULT_SPARK_CONF, **conf}.items():
        if key.startswith("spark.ui."):
            continue
        if spark.conf.isModifiable(key):
            spark.conf.set(key, value)
        elif key in conf:
            ignored.append(key)
    if ignored:
        print("labelqa: the Spark Connect server keeps its own " + ", ".join(
            f"spark.conf.{key}" for key in ignored) + " (set them where it is started)",
            file=sys.stderr)
    return spark


def build_session(master: str | None = None, conf: dict[str, str] | None = None,
                  app_name: str = "labelqa", remote: str | None = None) -> SparkSession:
    """A session for one run. `master` defaults to spark-submit's, else `local[*]`; with
    `remote` (sc://HOST:PORT) a Spark Connect session instead.

    Executors' Python must be this interpreter (which has labelqa installed) unless the
    caller configured another one.
    """
    if remote is not None:
        return connect_session(remote, conf or {})
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    elif not under_spark_submit():
        builder = builder.master("local[*]")
    settings = {**DEFAULT_SPARK_CONF, **(conf or {})}
    if sys.stderr.isatty() and "spark.ui.showConsoleProgress" not in (conf or {}):
        settings["spark.ui.showConsoleProgress"] = "true"
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as error:  # noqa: BLE001 - PySparkRuntimeError of a JVM that never started
        condition = getattr(error, "getCondition", None) or getattr(error, "getErrorClass",
                                                                     lambda: None)
        if condition() != "JAVA_GATEWAY_EXITED":
            raise
        raise _gateway_error(conf or {}) from None
    set_log_level(spark, verbose=False)
    for key, value in settings.items():  # an already running session takes them too
        if not key.startswith("spark.ui.") and spark.conf.isModifiable(key):
            spark.conf.set(key, value)
    return spark

"""Configuration: YAML, --set overrides, validation messages that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelqa.config import AuditConfig, IssuesConfig, load_config
from labelqa.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_bundled_config_lists_every_default():
    config = load_config(ROOT / "conf/audit.yaml")
    assert config.issues == IssuesConfig()
    assert config == AuditConfig(spark=config.spark)


def test_set_overrides_are_typed_like_yaml():
    config = load_config(None, ["issues.filter_by=both", "issues.frac_noise=0.5",
                                "issues.num_to_remove_per_class=[1, 2]",
                                "scoring.adjust_pred_probs=true", "classes=[a, b]",
                                "spark.conf.spark.sql.shuffle.partitions=8"])
    assert config.issues == IssuesConfig("both", 0.5, 1, (1, 2))
    assert config.scoring.adjust_pred_probs is True
    assert config.classes == ("a", "b")
    assert config.spark.conf == {"spark.sql.shuffle.partitions": "8"}


@pytest.mark.parametrize("override, message", [
    ("issues.filter=both", "unknown config key 'issues.filter'"),
    ("scoring.nope=1", "unknown config key 'scoring.nope'"),
    ("issues.filter_by=magic", "issues.filter_by: 'magic' is not one of prune_by_noise_rate"),
    ("scoring.alpha=1.5", "scoring.alpha: 1.5 is outside 0..1"),
    ("scoring.alpha=yes", "scoring.alpha: expected a number, got True"),
    ("scoring.temperature=0", "scoring.temperature: 0.0 must be > 0"),
    ("issues.min_examples_per_class=1.5", "issues.min_examples_per_class: expected an integer"),
    ("issues.frac_noise=2", "issues.frac_noise: 2.0 is outside 0..1"),
    ("input.labels_format=parquet", "input.labels_format: 'parquet' is not one of array"),
    ("output.class_scores=maybe", "output.class_scores: expected true or false"),
    ("issues.num_to_remove_per_class=3", "expected a list of integers"),
    ("noequals", "expected KEY=VALUE"),
])
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as error:
        load_config(None, [override])
    assert message in str(error.value)


def test_combinations_cleanlab_rejects_are_config_errors():
    with pytest.raises(ConfigError, match="num_to_remove_per_class: only supported"):
        load_config(None, ["issues.filter_by=confident_learning",
                           "issues.num_to_remove_per_class=[1, 1]"])
    with pytest.raises(ConfigError, match="adjust_pred_probs: not supported"):
        load_config(None, ["scoring.method=confidence_weighted_entropy",
                           "scoring.adjust_pred_probs=true"])


def test_unreadable_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("issues: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(("setting", "message"), [
    ("spark.driver.memory=lots", "spark.conf.spark.driver.memory: 'lots' is not a JVM memory "
                                 "size (a whole number with an optional unit k, m, g or t, "
                                 "e.g. 2g or 512m)"),
    ("spark.executor.memory=2gb", "spark.conf.spark.executor.memory: '2gb' is not a JVM memory "
                                  "size"),
    ("spark.sql.adaptive.advisoryPartitionSizeInBytes=big",
     "spark.conf.spark.sql.adaptive.advisoryPartitionSizeInBytes: 'big' is not a size"),
    ("spark.sql.shuffle.partitions=many",
     "spark.conf.spark.sql.shuffle.partitions: 'many' is not a positive integer"),
])
def test_bad_spark_settings_name_the_key_before_spark_starts(setting, message):
    with pytest.raises(ConfigError) as raised:
        load_config(None, [f"spark.conf.{setting}"])
    assert str(raised.value).startswith(message)


def test_good_spark_sizes_pass():
    config = load_config(None, ["spark.conf.spark.driver.memory=512m",
                                "spark.conf.spark.executor.memory=4G",
                                "spark.conf.spark.driver.maxResultSize=0",
                                "spark.conf.spark.sql.adaptive.advisoryPartitionSizeInBytes=64mb"])
    assert config.spark.conf["spark.driver.memory"] == "512m"


def test_a_setting_the_jvm_refuses_exits_2_naming_it(tmp_path):
    """The JVM never starts (a fresh process: the tests' own session would be reused)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "labelqa", "audit", "--labels", str(tmp_path / "l"),
         "--predictions", str(tmp_path / "p"), "--output", str(tmp_path / "out"),
         "--set", "spark.conf.spark.driver.extraJavaOptions=-Xss1q"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "labelqa: error: spark.conf: Spark's JVM did not start with these settings: "
        "spark.conf.spark.driver.extraJavaOptions=-Xss1q (Java's message is above); correct "
        "or remove the one it names")
    assert "Invalid thread stack size: -Xss1q" in result.stderr
    assert "Traceback" not in result.stderr and "JAVA_GATEWAY_EXITED" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_driver_memory_exits_2_naming_the_key(capsys):
    from labelqa.cli import main

    assert main(["audit", "--labels", "l", "--predictions", "p", "--output", "o",
                 "--set", "spark.conf.spark.driver.memory=lots"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "labelqa: error: spark.conf.spark.driver.memory: 'lots' is not a JVM memory size")

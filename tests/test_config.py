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

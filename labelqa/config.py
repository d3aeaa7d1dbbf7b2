"""The audit configuration: validated frozen dataclasses loaded from YAML (contract: keys)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labelqa.core.filters import FILTERS, PRUNE_FILTERS
from labelqa.core.filters import LOW_FILTERS as LOW_FILTERS
from labelqa.core.logistic import LogisticParams
from labelqa.core.params import IssuesParams, ScoringParams
from labelqa.core.scores import AGGREGATORS, SCORING_METHODS
from labelqa.errors import ConfigError

#: The `scoring` and `issues` sections are the core's parameter types (labelqa.core.params),
#: checked here (`validate`).
ScoringConfig = ScoringParams
IssuesConfig = IssuesParams


@dataclass(frozen=True)
class InputConfig:
    id_column: str = "id"
    labels_column: str = "labels"
    predictions_column: str = "pred_probs"
    labels_format: str = "array"
    predictions_format: str = "array"
    tag_column: str = "tag"
    class_column: str = "class"
    prob_column: str = "prob"
    prediction_prefix: str = ""
    unlabeled_ids: str = "empty"
    annotator_column: str | None = None  # long labels: who gave each tag (`annotators` table)


@dataclass(frozen=True)
class ValidationConfig:
    on_bad_rows: str = "quarantine"
    max_bad_fraction: float = 0.01


@dataclass(frozen=True)
class CatalogConfig:
    """Output tables also written to the session's catalog, as `database.table`, partitioned
    by dataset and run_date (a rerun replaces its own partition only)."""

    database: str | None = None


@dataclass(frozen=True)
class OutputConfig:
    class_scores: bool = False
    catalog: CatalogConfig = field(default_factory=CatalogConfig)


@dataclass(frozen=True)
class GatesConfig:
    """Quality gates: a run that breaks one still writes its outputs, then exits 3."""

    max_issue_fraction: float | None = None
    min_health_score: float | None = None
    max_class_label_noise: float | None = None


@dataclass(frozen=True)
class SparkConfig:
    """Spark settings applied when labelqa builds the session (ignored keys: none)."""

    app_name: str = "labelqa"
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """`labelqa predict`: where the features are, and the cross-validated logistic
    regressions that turn them into out-of-fold probabilities."""

    features_column: str = "features"  # array<float|double> or an MLlib vector
    feature_columns: tuple[str, ...] | None = None  # instead: one numeric column per feature
    num_features: int | None = None  # default: the length most feature vectors have
    folds: int = 5
    l2: float = 1e-4
    max_iter: int = 100
    tol: float = 1e-4
    standardize: bool = True
    seed: int = 0  # the folds' hash seed: another seed, other folds
    stacked: bool = False  # a second stage that sees the other classes' probabilities

    @property
    def params(self) -> LogisticParams:
        return LogisticParams(folds=self.folds, l2=self.l2, max_iter=self.max_iter,
                              tol=self.tol, standardize=self.standardize,
                              stacked=self.stacked)


@dataclass(frozen=True)
class AuditConfig:
    classes: tuple[str, ...] | None = None
    classes_path: str | None = None
    input: InputConfig = field(default_factory=InputConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    issues: IssuesConfig = field(default_factory=IssuesConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    gates: GatesConfig = field(default_factory=GatesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)

    def to_json(self) -> str:
        """The effective configuration, with secret-looking Spark settings redacted."""
        tree = dataclasses.asdict(self)
        tree["spark"]["conf"] = {k: redact_setting(k, v) for k, v in self.spark.conf.items()}
        return json.dumps(tree, sort_keys=True, default=list)


_SECRET = re.compile(r"secret|password|passwd|token|credential|access\.?key|private", re.I)


def redact_setting(key: str, value: str) -> str:
    """Hide the value of a setting whose name says it is a credential."""
    return "*****" if _SECRET.search(key) else value


_SECTIONS = {"input": InputConfig, "validation": ValidationConfig, "scoring": ScoringConfig,
             "issues": IssuesConfig, "output": OutputConfig, "gates": GatesConfig,
             "model": ModelConfig, "spark": SparkConfig}


#: sections inside a section (`output.catalog`)
_SUBSECTIONS: dict[tuple[type, str], type] = {(OutputConfig, "catalog"): CatalogConfig}


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


_EXPONENT_NUMBER = re.compile(r"[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+")


def _typed(key: str, value: Any, default: Any, annotation: str) -> Any:
    """Check a YAML value against the type of the key (bools are not numbers here)."""
    if value is None and ("None" in annotation or default is None):
        return None
    if isinstance(default, bool) or annotation == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation.endswith(" | None"):
        annotation = annotation[: -len(" | None")]
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation == "float":
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-8 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if annotation.startswith("tuple[int"):
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int)
                                              for v in value):
            raise ConfigError(f"{key}: expected a list of integers, got {value!r}")
        return tuple(value)
    if annotation.startswith("tuple[str"):
        if not isinstance(value, list) or any(not isinstance(v, (str, int)) for v in value):
            raise ConfigError(f"{key}: expected a list of names, got {value!r}")
        return tuple(str(v) for v in value)
    if annotation.startswith("Mapping"):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of Spark settings, got {value!r}")
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    raise ConfigError(f"{key}: unsupported value {value!r}")  # pragma: no cover


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise ConfigError(f"unknown config key {key!r}; known keys: "
                              f"{', '.join(prefix + f for f in fields)}")
        if name in _SECTIONS and cls is AuditConfig:
            kwargs[name] = _build(_SECTIONS[name], value or {}, f"{name}.")
            continue
        if (cls, name) in _SUBSECTIONS:
            kwargs[name] = _build(_SUBSECTIONS[cls, name], value or {}, f"{key}.")
            continue
        spec = fields[name]
        default = spec.default if spec.default is not dataclasses.MISSING else None
        kwargs[name] = _typed(key, value, default, str(spec.type))
    return cls(**kwargs)


#: Spark settings that become the JVM's heap size (-Xmx): Java's memory syntax. A bad one is
#: caught here, naming the key; Spark itself only reports JAVA_GATEWAY_EXITED.
JVM_MEMORY_SETTINGS = ("spark.driver.memory", "spark.executor.memory", "spark.yarn.am.memory")
_JVM_MEMORY = re.compile(r"[0-9]+[kmgt]?", re.I)
#: Size settings Spark (and labelqa, for the intake's partitions) parse as byte strings.
SIZE_SETTINGS = ("spark.driver.memoryOverhead", "spark.executor.memoryOverhead",
                 "spark.driver.maxResultSize", "spark.sql.adaptive.advisoryPartitionSizeInBytes")
_BYTE_STRING = re.compile(r"([0-9]+)([kmgtp]b?|b)?", re.I)
_BYTE_UNITS = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def byte_string_as_bytes(text: str) -> int:
    """A size setting in bytes, read as Spark reads it (JavaUtils.byteStringAsBytes: no unit
    means bytes; k, m, g, t, p with or without a trailing b are powers of 1024)."""
    match = _BYTE_STRING.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"{text!r} is not a size (a whole number with an optional unit b, "
                          "k, m, g, t or p, e.g. 64m)")
    unit = (match.group(2) or "b").lower()[0]
    return int(match.group(1)) * 1024 ** _BYTE_UNITS[unit]
#: Integer settings labelqa reads back to size its work.
INTEGER_SETTINGS = ("spark.sql.shuffle.partitions",
                    "spark.sql.execution.arrow.maxRecordsPerBatch",
                    "spark.sql.parquet.columnarReaderBatchSize")


def _validate_spark_settings(conf: Mapping[str, str]) -> None:
    for key, value in conf.items():
        where = f"spark.conf.{key}"
        if key in JVM_MEMORY_SETTINGS and not _JVM_MEMORY.fullmatch(value):
            raise ConfigError(f"{where}: {value!r} is not a JVM memory size (a whole number "
                              "with an optional unit k, m, g or t, e.g. 2g or 512m)")
        if key in SIZE_SETTINGS and not _BYTE_STRING.fullmatch(value):
            raise ConfigError(f"{where}: {value!r} is not a size (a whole number with an "
                              "optional unit b, k, m, g, t or p, e.g. 64m)")
        if key in INTEGER_SETTINGS and not (value.isdigit() and int(value) > 0):
            raise ConfigError(f"{where}: {value!r} is not a positive integer")


def _validate_model(model: ModelConfig) -> None:
    if model.folds < 2:
        raise ConfigError(f"model.folds: {model.folds}; cross-validation needs at least 2")
    if not model.l2 > 0:
        raise ConfigError(f"model.l2: {model.l2} must be > 0 (the regularisation keeps every "
                          "class's fit finite, even a class present on every example)")
    if model.max_iter < 1:
        raise ConfigError(f"model.max_iter: {model.max_iter} must be >= 1")
    if not model.tol > 0:
        raise ConfigError(f"model.tol: {model.tol} must be > 0")
    if model.num_features is not None and model.num_features < 1:
        raise ConfigError(f"model.num_features: {model.num_features} must be >= 1")
    if model.feature_columns is not None and not model.feature_columns:
        raise ConfigError("model.feature_columns: name at least one column")


_CATALOG_DATABASE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def validate(config: AuditConfig) -> AuditConfig:
    """Check the values' ranges and combinations; return the config unchanged."""
    _validate_spark_settings(config.spark.conf)
    s, i = config.scoring, config.issues
    _choice("scoring.method", s.method, SCORING_METHODS)
    _choice("scoring.aggregator", s.aggregator, AGGREGATORS)
    _choice("issues.filter_by", i.filter_by, FILTERS)
    if not 0 <= s.alpha <= 1:
        raise ConfigError(f"scoring.alpha: {s.alpha} is outside 0..1")
    if not s.temperature > 0:
        raise ConfigError(f"scoring.temperature: {s.temperature} must be > 0")
    if s.adjust_pred_probs and s.method == "confidence_weighted_entropy":
        raise ConfigError("scoring.adjust_pred_probs: not supported with "
                          "scoring.method=confidence_weighted_entropy (as in cleanlab)")
    if not 0 <= i.frac_noise <= 1:
        raise ConfigError(f"issues.frac_noise: {i.frac_noise} is outside 0..1")
    if i.min_examples_per_class < 0:
        raise ConfigError(f"issues.min_examples_per_class: {i.min_examples_per_class} is negative")
    if i.num_to_remove_per_class is not None:
        if not i.filter.prunes:
            raise ConfigError("issues.num_to_remove_per_class: only supported with filter_by "
                              f"{', '.join(PRUNE_FILTERS)} (as in cleanlab), not {i.filter_by}")
        if any(n < 0 for n in i.num_to_remove_per_class):
            raise ConfigError("issues.num_to_remove_per_class: counts must be >= 0")
    if i.frac_noise != 1.0 and not i.filter.prunes:
        raise ConfigError(f"issues.frac_noise: only used by filter_by {', '.join(PRUNE_FILTERS)}"
                          f", not {i.filter_by}")
    database = config.output.catalog.database
    if database is not None and not _CATALOG_DATABASE.fullmatch(database):
        raise ConfigError(f"output.catalog.database: {database!r} is not a database name "
                          "(letters, digits and '_', optionally catalog.database)")
    inp = config.input
    _choice("input.labels_format", inp.labels_format, ("array", "long", "onehot"))
    _choice("input.predictions_format", inp.predictions_format, ("array", "wide", "long"))
    _choice("input.unlabeled_ids", inp.unlabeled_ids, ("empty", "quarantine"))
    if inp.annotator_column is not None and inp.labels_format != "long":
        raise ConfigError("input.annotator_column: needs input.labels_format=long (one row per "
                          "id and tag, so that each tag has its annotator), not "
                          f"{inp.labels_format}")
    if inp.annotator_column in (inp.id_column, inp.tag_column):
        raise ConfigError(f"input.annotator_column: {inp.annotator_column!r} is the "
                          f"{'id' if inp.annotator_column == inp.id_column else 'tag'} column")
    _choice("validation.on_bad_rows", config.validation.on_bad_rows, ("quarantine", "fail"))
    if not 0 <= config.validation.max_bad_fraction <= 1:
        raise ConfigError("validation.max_bad_fraction: must be within 0..1")
    for name in ("max_issue_fraction", "min_health_score", "max_class_label_noise"):
        value = getattr(config.gates, name)
        if value is not None and not 0 <= value <= 1:
            raise ConfigError(f"gates.{name}: {value} is outside 0..1")
    _validate_model(config.model)
    if config.classes is not None and config.classes_path is not None:
        raise ConfigError("classes and classes_path: give one of them, not both")
    return config


def config_from_dict(tree: Mapping[str, Any]) -> AuditConfig:
    """An AuditConfig from its dict form (`AuditConfig.to_json`, a manifest's `config`)."""
    return validate(_build(AuditConfig, tree, ""))


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part!r} is not a section")
        node = child
    if parts[-1] == "conf" and parts[:-1] == ["spark"]:
        raise ConfigError("--set spark.conf: set one Spark key, e.g. --set spark.conf.spark.x=1")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` with VALUE typed as YAML (`--set issues.frac_noise=0.5`)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {key}: cannot parse {raw!r} as YAML ({error})") from None
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
                ) -> AuditConfig:
    """Read a YAML file (or the defaults), apply `--set` overrides, validate."""
    tree: dict = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ConfigError(f"--config {path}: cannot read ({error.strerror})") from None
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"--config {path}: not valid YAML ({error})") from None
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith("spark.conf."):
            tree.setdefault("spark", {}).setdefault("conf", {})[key[len("spark.conf."):]] = value
        else:
            _set_dotted(tree, key, value)
    return validate(_build(AuditConfig, tree, ""))

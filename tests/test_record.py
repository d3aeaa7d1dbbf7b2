"""The run record and the output contract: one record projected into summary, runs and the
manifest, each projection exactly the fields its table's schema declares."""

import datetime as dt
import json

import pytest

from labelqa.config import byte_string_as_bytes
from labelqa.errors import ConfigError
from labelqa.record import Comparison, NoiseChange, RunRecord, SourceCounts
from labelqa.tables import RUNS_SCHEMA, SUMMARY, manifest_path, partition_dir, report_path

START = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.timezone.utc)


def record(**changes) -> RunRecord:
    values = dict(
        output="/lake/out/", dataset="tags", run_date="2026-12-02", run_id="r1",
        status="gate_failed", gates_failed=("health score 0.7 < 0.8",), num_examples=10,
        num_classes=3, num_label_issues=4, overall_health_score=0.6,
        labels=SourceCounts(12, 10, 1, 1, {"bad_label": 1}, repeated_tags=2),
        predictions=SourceCounts(11, 10, 1, 0, {"nan_probability": 1}),
        separation_auc=0.9, weak_separation_classes=0, separation_warning=None,
        comparison=Comparison("2026-12-01", 0.7, 3,
                              (NoiseChange("cat", 0.2, 0.1, 0.1, 0.3, 0.3, 0.0),), "r0"),
        filter_by="prune_by_noise_rate", config_json='{"classes": ["a", "b", "c"]}',
        inputs={"labels": "/in/l", "predictions": "/in/p"},
        outputs={"examples": "/lake/out/examples/dataset=tags/run_date=2026-12-02"},
        manifest=manifest_path("/lake/out/", "tags", "2026-12-02"), labelqa_version="0.1.0",
        spark_version="4.0.0", started_at=START, finished_at=START + dt.timedelta(seconds=9),
        stages_seconds={"audit": 1.5})
    values.update(changes)
    return RunRecord(**values)


def test_the_summary_row_has_exactly_the_summary_schema_fields():
    row = record().summary_row()
    assert list(row) == SUMMARY.fieldNames()
    assert row["labels_quarantined"] == 1 and row["repeated_tags_collapsed"] == 2
    assert row["quarantined_by_reason"] == {"labels.bad_label": 1,
                                            "predictions.nan_probability": 1}


def test_the_runs_row_has_exactly_the_runs_schema_fields():
    row = record().runs_row()
    assert list(row) == RUNS_SCHEMA.fieldNames()
    assert row["class_noise_changes"] == [{
        "class_name": "cat", "label_noise": 0.2, "previous_label_noise": 0.1, "change": 0.1,
        "inverse_label_noise": 0.3, "previous_inverse_label_noise": 0.3, "inverse_change": 0.0}]
    assert (row["previous_run_date"], row["gates_failed"]) == ("2026-12-01",
                                                                ["health score 0.7 < 0.8"])


def test_the_manifest_states_the_same_facts_as_json():
    document = json.loads(json.dumps(record().manifest_document(), default=str))
    assert document["config"] == {"classes": ["a", "b", "c"]}
    assert document["rows"]["labels"]["rows"] == 12
    assert document["comparison"]["class_noise_changes"][0]["class_name"] == "cat"
    assert document["timings"]["stages_seconds"] == {"audit": 1.5}
    assert document["status"] == "gate_failed"


def test_the_comparison_text_names_a_rerun_of_the_same_date():
    assert record(comparison=Comparison()).comparison_text == (
        "no previous run of this dataset to compare with")
    rerun = record(comparison=Comparison("2026-12-02", 0.7, 3, ()))
    assert rerun.comparison_text == (
        "compared with the run of 2026-12-02 this rerun replaces: health 0.7000 -> 0.6000 "
        "(-0.1000), label issues 3 -> 4 (+1); label noise (inverse: forgotten tags) moved "
        "most: none")


def test_the_layout():
    assert partition_dir("s3a://b/out/", "examples", "d", "2026-01-02") == (
        "s3a://b/out/examples/dataset=d/run_date=2026-01-02")
    assert report_path("o", "d", "x") == "o/_reports/dataset=d/run_date=x.html"


@pytest.mark.parametrize("text, expected", [("64m", 64 << 20), ("64MB", 64 << 20),
                                            ("67108864", 67108864), ("1g", 1 << 30),
                                            ("10b", 10), ("2kb", 2048), ("1P", 1 << 50)])
def test_sizes_are_read_as_spark_reads_them(text, expected):
    assert byte_string_as_bytes(text) == expected


def test_a_size_that_is_not_one_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'1.5g' is not a size"):
        byte_string_as_bytes("1.5g")

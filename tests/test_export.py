"""`labelqa export`: the corrected label table in every format, re-read by the audit's own
reader; the changes table against class_issues; --max-changes; rows not audited carried
over; reviewers' verdicts; a failed export leaves the previous one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelqa.api import RunContext, run_audit_job
from labelqa.cli import main
from labelqa.config import InputConfig, load_config
from labelqa.sample import (
    generate,
    label_table,
    label_table_long,
    label_table_onehot,
    prediction_table,
)
from labelqa.spark.formats import RAW_PREFIX, labels_rows

NAMES = ("cat", "dog", "sky", "car")
RUN_DATE = "2026-12-03"
FAST = ["--master", "local[2,2]", "--set", "spark.conf.spark.sql.shuffle.partitions=4"]
NO_PREDICTION = 99_999  # a label row whose example has no prediction: quarantined


def _with_annotator(table: pa.Table) -> pa.Table:
    return table.append_column("annotator", pa.array([f"a{i % 3}" for i in
                                                      range(table.num_rows)]))


def _inputs(sample) -> dict[str, pa.Table]:
    """The sample's labels in the three formats, each with rows the audit quarantines."""
    first = int(sample.ids[0])
    long = _with_annotator(label_table_long(sample, NAMES))
    long = pa.concat_tables([long, pa.table({
        "id": pa.array([first, NO_PREDICTION], pa.int64()), "tag": ["dgo", "cat"],
        "annotator": ["a9", "a9"]})])  # an unknown tag quarantines the whole example
    array = _with_annotator(label_table(sample))
    array = pa.concat_tables([array.filter(pa.compute.not_equal(array["id"], first)),
                              pa.table({"id": pa.array([first, NO_PREDICTION], pa.int64()),
                                        "labels": pa.array([[1, 7], [0]],
                                                           pa.list_(pa.int32())),
                                        "annotator": ["a9", "a9"]})])
    onehot = label_table_onehot(sample, NAMES)
    extra = {"id": pa.array([NO_PREDICTION], pa.int64()),
             **{n: pa.array([k == 0]) for k, n in enumerate(NAMES)}}
    onehot = pa.concat_tables([onehot, pa.table(extra)])
    return {"long": long, "array": array, "onehot": onehot}


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    """One output directory, one dataset per label format, audited from the same sample."""
    root = tmp_path_factory.mktemp("export")
    sample = generate(300, len(NAMES), 11)
    pq.write_table(prediction_table(sample), str(root / "predictions.parquet"))
    for fmt, table in _inputs(sample).items():
        pq.write_table(table, str(root / f"labels_{fmt}.parquet"))
        config = load_config(None, [f"classes={list(NAMES)}", f"input.labels_format={fmt}",
                                    "validation.max_bad_fraction=0.2"])
        run_audit_job(spark, str(root / f"labels_{fmt}.parquet"),
                      str(root / "predictions.parquet"), str(root / "out"), config,
                      RunContext(fmt, RUN_DATE, f"run-{fmt}"))
    return root


def _export(runs, dataset, to, *extra):
    return main(["export", "--output", str(runs / "out"), "--dataset", dataset,
                 "--to", str(to), *FAST, *extra])


def _table(spark, runs, table, dataset) -> pd.DataFrame:
    return (spark.read.parquet(str(runs / "out" / table / f"dataset={dataset}"
                                   / f"run_date={RUN_DATE}")).toPandas())


def _expected_tags(spark, runs, dataset, pairs=None) -> dict[int, frozenset[int]]:
    """given_labels with the flagged pairs of the flagged examples (or `pairs`) toggled."""
    examples = _table(spark, runs, "examples", dataset)
    issues = _table(spark, runs, "class_issues", dataset).merge(
        examples[["id", "issue_rank"]], on="id")
    if pairs is None:
        pairs = set(zip(issues.loc[issues.issue_rank.notna(), "id"],
                        issues.loc[issues.issue_rank.notna(), "class_index"]))
    tags = {int(i): set(map(int, given)) for i, given in zip(examples.id, examples.given_labels)}
    for ident, k in pairs:
        tags[int(ident)] ^= {int(k)}
    return {i: frozenset(t) for i, t in tags.items()}


def _reread(spark, path, fmt) -> dict[int, frozenset[int]]:
    """Every id's tags, read by the audit's reader of `fmt`."""
    checked = labels_rows(spark.read.parquet(str(path)), InputConfig(labels_format=fmt),
                          NAMES)
    rows = checked.rows.filter("_reason is null").toPandas()  # bad rows: carried over as they were
    tags: dict[int, set[int]] = {}
    for _, row in rows.iterrows():
        if fmt == "long":
            values = [row["_unit"]]
        elif fmt == "array":
            values = row[RAW_PREFIX + "labels"]
        else:
            values = row["_classes"]
        tags.setdefault(int(row["id"]), set()).update(int(v) for v in values)
    return {i: frozenset(t) for i, t in tags.items()}


def _audited_part(tags: dict, expected: dict) -> dict:
    return {i: tags.get(i, frozenset()) for i in expected}


@pytest.mark.parametrize("fmt", ["long", "array", "onehot"])
def test_same_format_round_trips_and_carries_everything_else_over(spark, runs, tmp_path, fmt,
                                                                  capsys):
    to = tmp_path / "export"
    assert _export(runs, fmt, to) == 0
    expected = _expected_tags(spark, runs, fmt)
    tags = _reread(spark, to / "labels", fmt)
    assert _audited_part(tags, expected) == expected
    source = pq.read_table(str(runs / f"labels_{fmt}.parquet")).to_pandas()
    out = pq.read_table(str(to / "labels")).to_pandas()
    assert list(out.columns) == list(source.columns)
    not_audited = ~source.id.isin(list(expected))
    assert not_audited.sum() >= (2 if fmt != "onehot" else 1)
    key = ["id", "tag"] if fmt == "long" else ["id"]

    def rows(frame):
        frame = frame.copy()
        if "labels" in frame:
            frame["labels"] = frame["labels"].map(list)
        return frame.sort_values(key).reset_index(drop=True).astype(str)

    pd.testing.assert_frame_equal(rows(out[out.id.isin(source.id[not_audited])]),
                                  rows(source[not_audited]))
    given = _expected_tags(spark, runs, fmt, pairs=set())
    changed_ids = {i for i in expected if expected[i] != given[i]}
    if fmt != "long":  # one row per example: unchanged ones are copied whole, annotator too
        same = source[source.id.isin(list(expected)) & ~source.id.isin(list(changed_ids))]
        pd.testing.assert_frame_equal(rows(out[out.id.isin(same.id)]), rows(same))
    else:  # kept tag rows keep their annotator; added ones have none
        merged = out.merge(source, on=["id", "tag"], how="left", suffixes=("", "_in"))
        kept = merged.annotator_in.notna()
        assert (merged.annotator[kept] == merged.annotator_in[kept]).all()
        assert merged.annotator[~kept].isna().all()
    counts = json.loads((to / "_export.json").read_text())
    assert counts["rows"]["in"] == len(source)
    assert counts["rows"]["in_not_audited"] == counts["rows"]["out_not_audited"] \
        == not_audited.sum()
    assert counts["examples"] == {"audited": len(expected), "changed": len(changed_ids),
                                  "without_tags": (sum(not t for t in expected.values())
                                                   if fmt == "long" else None)}
    if fmt == "long":
        flagged = counts["changes"]
        assert counts["rows"]["tag_rows_added"] == flagged["added"]
        assert counts["rows"]["out"] == len(source) - counts["rows"]["tag_rows_removed"] \
            + flagged["added"]
    else:
        assert counts["rows"]["out"] == counts["rows"]["in"]
    assert f"labels: {to}/labels ({fmt})" in capsys.readouterr().out


@pytest.mark.parametrize(("source", "target"), [("long", "array"), ("long", "onehot"),
                                                ("array", "long")])
def test_another_format_holds_the_audited_examples_and_not_audited_keeps_the_rest(
        spark, runs, tmp_path, source, target):
    to = tmp_path / "export"
    assert _export(runs, source, to, "--labels-format", target) == 0
    expected = _expected_tags(spark, runs, source)
    tags = _reread(spark, to / "labels", target)
    assert _audited_part(tags, expected) == expected
    assert set(tags) <= set(expected)  # only audited examples
    if target != "long":
        assert len(pq.read_table(str(to / "labels"))) == len(expected)
    rest = pq.read_table(str(to / "not_audited")).to_pandas()
    original = pq.read_table(str(runs / f"labels_{source}.parquet")).to_pandas()
    assert sorted(rest.id) == sorted(original.id[~original.id.isin(list(expected))])
    assert list(rest.columns) == list(original.columns)
    counts = json.loads((to / "_export.json").read_text())
    assert counts["rows"]["not_audited_table"] == len(rest)


def test_every_change_is_a_flagged_pair_of_class_issues(spark, runs, tmp_path):
    to = tmp_path / "export"
    assert _export(runs, "array", to) == 0
    changes = pq.read_table(str(to / "changes")).to_pandas()
    examples = _table(spark, runs, "examples", "array")
    classes = _table(spark, runs, "classes", "array")
    issues = _table(spark, runs, "class_issues", "array").merge(
        examples[["id", "issue_rank"]], on="id")
    issues = issues[issues.issue_rank.notna()].merge(classes, on=["class_index", "class_name"])
    wanted = pd.DataFrame({
        "id": issues.id, "class_index": issues.class_index, "class_name": issues.class_name,
        "action": np.where(issues.given, "removed", "added"), "pred_prob": issues.pred_prob,
        "threshold": np.where(issues.given, 1 - issues.threshold_not_given,
                              issues.threshold_given),
        "issue_rank": issues.issue_rank.astype("int32"), "verdict": None})
    key = ["issue_rank", "id", "class_index"]
    assert len(changes) > 10
    pd.testing.assert_frame_equal(
        changes.sort_values(key).reset_index(drop=True),
        wanted.sort_values(key).reset_index(drop=True)[list(changes.columns)],
        check_dtype=False)


def test_max_changes_takes_whole_examples_in_rank_order(spark, runs, tmp_path):
    examples = _table(spark, runs, "examples", "array")
    flagged = examples[examples.issue_rank.notna()].sort_values("issue_rank")
    total = np.cumsum(flagged.num_class_issues.to_numpy())
    # a budget that ends inside an example with more than one change
    cut = next(i for i in range(1, len(total)) if flagged.num_class_issues.iloc[i] > 1)
    budget = int(total[cut] - 1)
    to = tmp_path / "export"
    assert _export(runs, "array", to, "--max-changes", str(budget)) == 0
    changes = pq.read_table(str(to / "changes")).to_pandas()
    assert sorted(set(changes.id)) == sorted(flagged.id.iloc[:cut])
    assert len(changes) == total[cut - 1] <= budget
    pairs = set(zip(changes.id, changes.class_index))
    assert _audited_part(_reread_array(to), _expected_tags(spark, runs, "array", pairs)) \
        == _expected_tags(spark, runs, "array", pairs)


def _reread_array(to) -> dict[int, frozenset[int]]:
    out = pq.read_table(str(to / "labels")).to_pandas()
    return {int(i): frozenset(map(int, t)) for i, t in zip(out.id, out.labels)}


def test_reviews_confirmed_always_applied_rejected_never(spark, runs, tmp_path, capsys):
    output = runs / "out-reviewed"
    shutil.copytree(runs / "out", output)
    issues = (pd.read_parquet(output / "class_issues" / "dataset=array")
              .sort_values(["id", "class_index"]))
    confirmed, rejected = issues.iloc[0], issues.iloc[1]
    path = tmp_path / "verdicts.csv"
    path.write_text(f"id,class,verdict\n{confirmed.id},{confirmed.class_name},confirmed\n"
                    f"{rejected.id},{rejected.class_index},rejected\n")
    assert main(["reviews", "--output", str(output), "--dataset", "array", "--reviews",
                 str(path), *FAST]) == 0
    capsys.readouterr()
    for mode in ("none", "flagged"):
        to = tmp_path / mode
        assert main(["export", "--output", str(output), "--dataset", "array", "--to", str(to),
                     "--apply", mode, *FAST]) == 0
        changes = pq.read_table(str(to / "changes")).to_pandas()
        by_pair = {(int(i), int(k)): v for i, k, v in
                   zip(changes.id, changes.class_index, changes.verdict)}
        assert by_pair[(int(confirmed.id), int(confirmed.class_index))] == "confirmed"
        tags = _reread_array(to)
        given = {int(i): set(g) for i, g in zip(*_given(output))}
        assert (confirmed.class_index in tags[int(confirmed.id)]) != \
            (confirmed.class_index in given[int(confirmed.id)])
        assert (rejected.class_index in tags[int(rejected.id)]) == \
            (rejected.class_index in given[int(rejected.id)])
        if mode == "none":
            assert len(changes) == 1
        else:
            assert by_pair[(int(rejected.id), int(rejected.class_index))] == "rejected"
            counts = json.loads((to / "_export.json").read_text())["changes"]
            assert counts["rejected"] == 1 and counts["confirmed"] == 1
            assert counts["applied"] == len(changes) - 1


def _given(output):
    examples = pd.read_parquet(output / "examples" / "dataset=array")
    return examples.id, examples.given_labels


def test_a_failed_export_leaves_the_previous_one(spark, runs, tmp_path, monkeypatch):
    import labelqa.act.export as export

    to = tmp_path / "export"
    assert _export(runs, "array", to) == 0
    before = {p.relative_to(to): p.read_bytes() for p in to.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "_counts", broken)
    assert _export(runs, "array", to, "--labels-format", "long") == 1
    after = {p.relative_to(to): p.read_bytes() for p in to.rglob("*") if p.is_file()}
    assert after == before


def test_errors(spark, runs, tmp_path, capsys):
    assert _export(tmp_path / "nothing", "array", tmp_path / "x") == 2
    assert "summary: no labelqa outputs under" in capsys.readouterr().err
    assert _export(runs, "nope", tmp_path / "x") == 2
    assert "summary.run_date: no run of dataset 'nope'" in capsys.readouterr().err
    assert _export(runs, "array", tmp_path / "x", "--labels",
                   str(runs / "labels_onehot.parquet")) == 2
    assert "labels.labels: column not found" in capsys.readouterr().err
    # the long table of the same sample, but another run's: the tags of one example differ
    other = pq.read_table(str(runs / "labels_array.parquet")).to_pandas()
    other["labels"] = [[0, 1, 2, 3] if i == 5 else list(t) for i, t in enumerate(other.labels)]
    pq.write_table(pa.Table.from_pandas(other, preserve_index=False),
                   str(tmp_path / "other.parquet"))
    assert _export(runs, "array", tmp_path / "x", "--labels",
                   str(tmp_path / "other.parquet")) == 2
    assert (f"labels.labels: 1 audited example(s) have other tags in "
            f"'{tmp_path}/other.parquet' than the run audited (examples.given_labels): this "
            f"is not the label table of the run; give it with --labels (example id: "
            f"{int(other.id[5])})") in capsys.readouterr().err
    output = tmp_path / "copy"
    shutil.copytree(runs / "out", output)
    manifest = output / "_manifests" / "dataset=array" / f"run_date={RUN_DATE}.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "failed"}))
    (manifest.parent / f".{manifest.name}.crc").unlink()  # Hadoop's checksum of the old text
    assert main(["export", "--output", str(output), "--dataset", "array", "--to",
                 str(tmp_path / "x"), *FAST]) == 2
    assert ("manifest.status: the run of dataset 'array' on 2026-12-03 has status 'failed'; "
            "only a run with status succeeded or gate_failed can be used"
            ) in capsys.readouterr().err
    manifest.unlink()
    assert main(["export", "--output", str(output), "--dataset", "array", "--to",
                 str(tmp_path / "x"), *FAST]) == 2
    assert "manifest: no manifest at" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

"""`labelqa queue`: the review queue's order, budget and per-class minimum on hand-made audit
outputs, the data join and its errors, and the three formats written exactly."""

from __future__ import annotations

import csv
import json

import pytest

from labelqa.act.queue import QueueRequest, build_queue
from labelqa.cli import main
from labelqa.config import load_config
from labelqa.errors import ConfigError, InputError
from labelqa.spark.output import write_manifest, write_partition

CLASSES = ("a", "b", "c", "d")
#: id -> (given tags, flagged pairs as (class, given)); issue_rank = position + 1
FLAGGED = {
    10: (["a"], [("a", True)]),
    11: (["b"], [("a", False), ("b", True)]),
    12: ([], [("a", False)]),
    13: (["a", "d"], [("a", True)]),
    14: (["a"], [("c", False)]),
    15: (["b", "c"], [("b", True)]),
    16: (["c"], [("a", False), ("c", True)]),
    17: ([], [("b", False)]),
}
NOT_FLAGGED = {20: ["d"], 21: []}
DATASET, RUN_DATE = "tiny", "2026-11-03"
EXAMPLES_DDL = ("id long, given_labels array<int>, given_tags array<string>, "
                "label_quality_score double, is_label_issue boolean, issue_rank int, "
                "suggested_labels array<int>, suggested_tags array<string>, "
                "num_class_issues int, explanation struct<text: string>")


def suggested(given: list[str], pairs: list[tuple[str, bool]]) -> list[str]:
    toggled = set(given) ^ {name for name, _ in pairs}
    return [c for c in CLASSES if c in toggled]


def score(rank: int) -> float:
    return rank / 20


def write_run(spark, output: str, dataset: str = DATASET, run_date: str = RUN_DATE,
              status: str = "succeeded") -> None:
    """The tables and manifest of one audit run with the findings of FLAGGED."""
    index = {c: k for k, c in enumerate(CLASSES)}
    examples, pairs = [], []
    for rank, (example_id, (given, flagged)) in enumerate(FLAGGED.items(), start=1):
        after = suggested(given, flagged)
        examples.append((example_id, [index[c] for c in given], given, score(rank), True, rank,
                         [index[c] for c in after], after, len(flagged),
                         (f"why {example_id}",)))
        pairs += [(example_id, index[c], c, was, 0.5, 0.1) for c, was in flagged]
    for example_id, given in NOT_FLAGGED.items():
        examples.append((example_id, [index[c] for c in given], given, 0.9, False, None,
                         [index[c] for c in given], given, 0, None))
    tables = {
        "examples": spark.createDataFrame(examples, EXAMPLES_DDL),
        "class_issues": spark.createDataFrame(
            pairs, "id long, class_index int, class_name string, given boolean, "
                   "pred_prob double, class_score double"),
        "classes": spark.createDataFrame(list(enumerate(CLASSES)),
                                         "class_index int, class_name string"),
        "summary": spark.createDataFrame([("run-1",)], "run_id string"),
    }
    for name, df in tables.items():
        write_partition(df, output, name, dataset, run_date)
    config = load_config(None, [f"classes={list(CLASSES)}"])
    write_manifest(spark, output, dataset, run_date,
                   {"run_id": "run-1", "status": status, "dataset": dataset,
                    "run_date": run_date, "config": json.loads(config.to_json()),
                    "inputs": {"labels": "labels", "predictions": "predictions"},
                    "rows": {"label_issues": len(FLAGGED)}})


@pytest.fixture(scope="module")
def run_output(spark, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("queue") / "out")
    write_run(spark, output)
    return output


def queued_ids(spark, output, budget, min_per_class=0):
    queue = build_queue(spark, output, DATASET, None, QueueRequest(budget, min_per_class))
    return [row["id"] for row in queue.rows], queue


@pytest.mark.parametrize("budget, minimum, expected, reserved", [
    (4, 0, [10, 11, 12, 13], 0),
    # a: 10, 11; b: 11, 15; c: 14, 16 reserved (5 examples); the best other: 12
    (6, 2, [10, 11, 12, 14, 15, 16], 5),
    # a: 10; b: 11; c: 14 reserved; then 12, 13, 15 by rank
    (6, 1, [10, 11, 12, 13, 14, 15], 3),
    (3, 1, [10, 11, 14], 3),
    # a: 10, 11, 12; b: 11, 15, 17; c: 14, 16 (it has 2) reserved; 13 fills the budget, and
    # it is more than the flagged examples: every one of them, never an unflagged one
    (20, 3, [10, 11, 12, 13, 14, 15, 16, 17], 7),
])
def test_order_budget_and_per_class_minimum(spark, run_output, budget, minimum, expected,
                                            reserved):
    ids, queue = queued_ids(spark, run_output, budget, minimum)
    assert ids == expected
    assert [row["issue_rank"] for row in queue.rows] == [list(FLAGGED).index(i) + 1
                                                         for i in expected]
    assert (queue.flagged_examples, queue.reserved, queue.classes_with_issues) == \
        (8, reserved, 3)


def test_a_reservation_larger_than_the_budget_is_an_error_with_the_numbers(spark, run_output):
    with pytest.raises(InputError, match=r"--min-per-class 2 over the 3 classes with issues "
                                         r"needs 5 examples, more than --budget 4: raise the "
                                         r"budget to 5 or lower the minimum"):
        queued_ids(spark, run_output, 4, 2)


def test_rows_carry_tags_explanation_and_flagged_pairs(spark, run_output):
    _, queue = queued_ids(spark, run_output, 2)
    assert queue.rows == [
        {"id": 10, "issue_rank": 1, "label_quality_score": 0.05, "given_tags": ["a"],
         "suggested_tags": [], "explanation": "why 10",
         "flagged": [{"class_name": "a", "class_index": 0, "given": True}]},
        {"id": 11, "issue_rank": 2, "label_quality_score": 0.1, "given_tags": ["b"],
         "suggested_tags": ["a"], "explanation": "why 11",
         "flagged": [{"class_name": "a", "class_index": 0, "given": False},
                     {"class_name": "b", "class_index": 1, "given": True}]},
    ]
    assert queue.model_version == "labelqa tiny 2026-11-03"
    assert queue.class_names == CLASSES


@pytest.fixture(scope="module")
def data_table(spark, tmp_path_factory):
    """Data for every queued id but 17, and for one id the audit never saw."""
    path = str(tmp_path_factory.mktemp("data") / "data.parquet")
    rows = [(i, f"https://img.example/{i}.png", f"caption {i}", i * 1.5)
            for i in (10, 11, 12, 13, 14, 15, 16, 99)]
    spark.createDataFrame(rows, "id int, image_url string, caption string, weight double"
                          ).write.parquet(path)  # int ids: cast to the run's bigint
    return path


def test_data_columns_are_joined_by_id_and_missing_ids_kept_with_nulls(spark, run_output,
                                                                       data_table):
    queue = build_queue(spark, run_output, DATASET, RUN_DATE,
                        QueueRequest(8, 0, data_table, ("image_url", "caption")))
    assert [(r["id"], r["image_url"], r["caption"]) for r in queue.rows] == [
        (i, f"https://img.example/{i}.png", f"caption {i}") for i in range(10, 17)
    ] + [(17, None, None)]
    assert [f.name for f in queue.schema.fields] == [
        "id", "issue_rank", "label_quality_score", "given_tags", "suggested_tags",
        "explanation", "flagged", "image_url", "caption"]
    assert queue.missing_data == 1


def test_data_table_errors_name_the_column_and_the_table_columns(spark, run_output,
                                                                 data_table, tmp_path):
    def build(columns, path=data_table):
        build_queue(spark, run_output, DATASET, None, QueueRequest(8, 0, path, columns))

    with pytest.raises(InputError, match=r"^data\.img: column not found in .* \(columns: id, "
                                         r"image_url, caption, weight\)$"):
        build(("image_url", "img"))
    no_id = str(tmp_path / "no_id")
    spark.createDataFrame([(10, "x")], "key long, image_url string").write.parquet(no_id)
    with pytest.raises(InputError, match=r"^data\.id: the id column \(the run's "
                                         r"input\.id_column\) not found in .* \(columns: key, "
                                         r"image_url\)$"):
        build(("image_url",), no_id)
    twice = str(tmp_path / "twice")
    spark.createDataFrame([(12, "x"), (12, "y"), (13, "z"), (13, "z"), (99, "w"), (99, "w")],
                          "id long, image_url string").write.parquet(twice)
    with pytest.raises(InputError, match=r"^data\.id: 2 rows have the id of one queued "
                                         r"example: ids must be unique \(example id: 12\)$"):
        build(("image_url",), twice)
    text_ids = str(tmp_path / "text_ids")
    spark.createDataFrame([("10", "x")], "id string, image_url string").write.parquet(text_ids)
    with pytest.raises(InputError, match=r"^data\.id: the ids are string, the run's are "
                                         r"bigint$"):
        build(("image_url",), text_ids)
    spark.createDataFrame([(10, "x")], "id long, flagged string").write.parquet(
        str(tmp_path / "clash"))
    for clash in ("flagged", "id"):
        with pytest.raises(InputError, match=rf"^data\.{clash}: is a column of the queue "
                                             r"itself: rename it in the data table$"):
            build((clash,), str(tmp_path / "clash"))


def test_request_checks():
    with pytest.raises(ConfigError, match="--data and --data-columns go together"):
        QueueRequest(3, 0, "x")
    with pytest.raises(ConfigError, match="--min-per-class must be 0 or more, not -1"):
        QueueRequest(3, -1)
    with pytest.raises(ConfigError, match="--data-columns names a more than once"):
        QueueRequest(3, 0, "x", ("a", "b", "a"))


def test_run_selection_latest_and_unusable_status(spark, tmp_path):
    output = str(tmp_path / "out")
    write_run(spark, output, run_date="2026-11-01")
    write_run(spark, output, run_date="2026-11-02", status="running")
    with pytest.raises(InputError, match=r"^manifest\.status: the run of dataset 'tiny' on "
                                         r"2026-11-02 has status 'running'; only a run with "
                                         r"status succeeded or gate_failed can be used$"):
        build_queue(spark, output, DATASET, None, QueueRequest(2))
    queue = build_queue(spark, output, DATASET, "2026-11-01", QueueRequest(2))
    assert queue.model_version == "labelqa tiny 2026-11-01"
    with pytest.raises(InputError, match=r"no run of dataset 'other'"):
        build_queue(spark, output, "other", None, QueueRequest(2))


def cli(output, to, *extra):
    return main(["queue", "--output", output, "--dataset", DATASET, "--to", str(to),
                 "--master", "local[2,2]", *extra])


def test_cli_csv(spark, run_output, data_table, tmp_path, capsys):
    to = tmp_path / "queue.csv"
    assert cli(run_output, to, "--budget", "3", "--min-per-class", "1", "--data", data_table,
               "--data-columns", "caption, image_url") == 0
    assert capsys.readouterr().out == (
        "queued 3 of 8 flagged examples (budget 3; 3 reserved for at least 1 of each of the 3 "
        f"classes with issues): {to}\n")
    with open(to, newline="") as handle:
        assert list(csv.reader(handle)) == [
            ["id", "issue_rank", "label_quality_score", "given_tags", "suggested_tags",
             "explanation", "flagged", "caption", "image_url"],
            ["10", "1", "0.05", "a", "", "why 10", "a (given)", "caption 10",
             "https://img.example/10.png"],
            ["11", "2", "0.1", "b", "a", "why 11", "a (not given); b (given)", "caption 11",
             "https://img.example/11.png"],
            ["14", "5", "0.25", "a", "a; c", "why 14", "c (not given)", "caption 14",
             "https://img.example/14.png"],
        ]
    # rewritten in place, by a rename: no temporary file left
    assert cli(run_output, to, "--budget", "1") == 0
    assert to.read_text().splitlines()[1:] == ["10,1,0.05,a,,why 10,a (given)"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".crc")) == [
        "queue.csv"]  # (Hadoop's local filesystem writes .crc checksums beside a file)


def test_cli_parquet_has_real_arrays_and_structs(spark, run_output, data_table, tmp_path,
                                                 capsys):
    to = tmp_path / "queue"
    assert cli(run_output, to, "--budget", "8", "--format", "parquet", "--data", data_table,
               "--data-columns", "image_url") == 0
    assert "; 1 queued id(s) not in the data table (their data columns are empty)" in \
        capsys.readouterr().out
    assert cli(run_output, to, "--budget", "2", "--format", "parquet", "--data", data_table,
               "--data-columns", "image_url") == 0
    table = spark.read.parquet(str(to))
    assert table.schema.simpleString() == (
        "struct<id:bigint,issue_rank:int,label_quality_score:double,given_tags:array<string>,"
        "suggested_tags:array<string>,explanation:string,flagged:array<struct<class_name:"
        "string,class_index:int,given:boolean>>,image_url:string>")
    assert [row.asDict(recursive=True) for row in table.orderBy("issue_rank").collect()] == [
        {"id": 10, "issue_rank": 1, "label_quality_score": 0.05, "given_tags": ["a"],
         "suggested_tags": [], "explanation": "why 10",
         "flagged": [{"class_name": "a", "class_index": 0, "given": True}],
         "image_url": "https://img.example/10.png"},
        {"id": 11, "issue_rank": 2, "label_quality_score": 0.1, "given_tags": ["b"],
         "suggested_tags": ["a"], "explanation": "why 11",
         "flagged": [{"class_name": "a", "class_index": 0, "given": False},
                     {"class_name": "b", "class_index": 1, "given": True}],
         "image_url": "https://img.example/11.png"},
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queue"]


def test_cli_label_studio_tasks_and_config(spark, run_output, data_table, tmp_path):
    to = tmp_path / "tasks.json"
    assert cli(run_output, to, "--budget", "1", "--min-per-class", "0", "--format",
               "label-studio", "--data", data_table, "--data-columns", "caption,image_url"
               ) == 0
    assert json.loads(to.read_text()) == [{
        "data": {"caption": "caption 10", "image_url": "https://img.example/10.png",
                 "labelqa_id": "10", "issue_rank": 1, "label_quality_score": 0.05,
                 "given_tags": ["a"], "suggested_tags": [], "explanation": "why 10",
                 "flagged": [{"class_name": "a", "class_index": 0, "given": True}]},
        "predictions": [{"model_version": "labelqa tiny 2026-11-03", "score": 0.05,
                         "result": [{"from_name": "tags", "to_name": "image",
                                     "type": "choices", "value": {"choices": []}}]}]}]
    assert (tmp_path / "tasks.json.label_config.xml").read_text() == (
        "<View>\n"
        '  <Header value="labelqa issue #$issue_rank (label quality score '
        '$label_quality_score)"/>\n'
        '  <Image name="image" value="$image_url"/>\n'
        '  <Text name="explanation" value="$explanation"/>\n'
        '  <Choices name="tags" toName="image" choice="multiple" showInLine="true">\n'
        '    <Choice value="a"/>\n    <Choice value="b"/>\n    <Choice value="c"/>\n'
        '    <Choice value="d"/>\n'
        "  </Choices>\n</View>\n")


def test_cli_errors_exit_2(spark, run_output, tmp_path, capsys):
    assert cli(run_output, tmp_path / "q.csv", "--budget", "4", "--min-per-class", "2") == 2
    assert "needs 5 examples, more than --budget 4" in capsys.readouterr().err
    assert cli(run_output, tmp_path / "q.csv", "--budget", "0") == 2
    assert "'0' is not a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists()

"""Label Studio: the export parser on hand-made exports, and (slow) a real Label Studio that
imports a queue, records verdicts through its API and exports them."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from labelqa.act.labelstudio import label_config, object_tag, tasks, verdicts_from_export
from labelqa.errors import InputError
from tests.venvs import cached_venv

CLASSES = ("cat", "dog", "sky", "tree")
UTC = dt.timezone.utc


def task(labelqa_id, given, suggested, flagged, *annotations):
    return {"id": 100 + len(labelqa_id), "data": {
        "labelqa_id": labelqa_id, "issue_rank": 1, "label_quality_score": 0.1,
        "given_tags": given, "suggested_tags": suggested, "explanation": "x",
        "flagged": [{"class_name": c, "class_index": CLASSES.index(c), "given": g}
                    for c, g in flagged]},
        "annotations": list(annotations), "predictions": [7]}


def annotation(choices, at, *, cancelled=False, user=1, annotation_id=1):
    result = [] if choices is None else [{"from_name": "tags", "to_name": "image",
                                          "type": "choices", "value": {"choices": choices}}]
    return {"id": annotation_id, "completed_by": user, "result": result,
            "was_cancelled": cancelled, "created_at": at, "updated_at": at}


def test_verdicts_confirmed_rejected_corrected_and_skipped():
    export = [
        # both suggestions accepted; the latest non-cancelled annotation counts
        task("1", ["cat"], ["dog"], [("cat", True), ("dog", False)],
             annotation(["sky"], "2026-11-01T10:00:00Z", annotation_id=1),
             annotation(["dog"], "2026-11-01T11:00:00.123456789Z", user=2, annotation_id=2),
             annotation(["cat"], "2026-11-01T12:00:00Z", cancelled=True, annotation_id=3)),
        # the suggestion rejected, and a tag labelqa did not flag added
        task("2", ["cat"], ["cat", "sky"], [("sky", False)],
             annotation(["cat", "tree"], "2026-11-02T09:30:00+00:00", user={"id": 3,
                                                                         "email": "r@x.org"})),
        task("3", ["dog"], [], [("dog", True)]),  # not reviewed
        task("4", ["dog"], [], [("dog", True)],
             annotation(["cat"], "2026-11-02T09:30:00Z", cancelled=True)),  # skipped
        # every tag removed (an empty result): the extraneous one confirmed, one corrected
        task("5", ["dog", "sky"], ["sky"], [("dog", True)],
             annotation(None, "2026-11-03T08:00:00Z", user=None)),
    ]
    rows, skipped = verdicts_from_export(export, CLASSES)
    at = dt.datetime
    assert rows == [
        {"id": "1", "class_name": "cat", "verdict": "confirmed", "reviewer": "2",
         "reviewed_at": at(2026, 11, 1, 11, 0, 0, 123456, tzinfo=UTC)},
        {"id": "1", "class_name": "dog", "verdict": "confirmed", "reviewer": "2",
         "reviewed_at": at(2026, 11, 1, 11, 0, 0, 123456, tzinfo=UTC)},
        {"id": "2", "class_name": "sky", "verdict": "rejected", "reviewer": "r@x.org",
         "reviewed_at": at(2026, 11, 2, 9, 30, tzinfo=UTC)},
        {"id": "2", "class_name": "tree", "verdict": "corrected", "reviewer": "r@x.org",
         "reviewed_at": at(2026, 11, 2, 9, 30, tzinfo=UTC)},
        {"id": "5", "class_name": "dog", "verdict": "confirmed", "reviewer": None,
         "reviewed_at": at(2026, 11, 3, 8, tzinfo=UTC)},
        {"id": "5", "class_name": "sky", "verdict": "corrected", "reviewer": None,
         "reviewed_at": at(2026, 11, 3, 8, tzinfo=UTC)},
    ]
    assert skipped == 2


@pytest.mark.parametrize("export, message", [
    ({"tasks": []}, r"^reviews: a Label Studio JSON export is a list of tasks, not a dict"),
    ([{"data": {"image": "x"}}], r"^reviews\.data\.labelqa_id: task 0 has no "
                                 r"data\.labelqa_id: not a task of a labelqa queue$"),
    ([task("1", [], [], []), "text"], r"^reviews\.data\.labelqa_id: task 1 has no"),
    ([task("7", ["cat"], [], [("cat", True)], annotation(["cow"], "2026-11-01T10:00:00Z"))],
     r"^reviews\.annotations\.result: task 0 \(labelqa_id '7'\): 'cow' is not a class of "
     r"the run \(classes: cat, dog, sky, tree\)$"),
    ([task("7", ["bird"], [], [("cat", True)], annotation([], "2026-11-01T10:00:00Z"))],
     r"^reviews\.data\.given_tags: task 0 \(labelqa_id '7'\): 'bird' is not a class"),
    ([task("7", ["cat"], [], [("cat", True)], annotation([], "yesterday"))],
     r"^reviews\.annotations\.updated_at: task 0 \(labelqa_id '7'\): 'yesterday' is not an "
     r"ISO 8601 time$"),
])
def test_malformed_exports_are_input_errors(export, message):
    with pytest.raises(InputError, match=message):
        verdicts_from_export(export, CLASSES)


def test_the_object_tag_follows_the_data_columns():
    assert object_tag(["caption", "photo_url"]) == ("Image", "image", "photo_url")
    assert object_tag(["caption", "Image"]) == ("Image", "image", "Image")
    assert object_tag(["caption", "urlish"]) == ("Text", "text", "caption")
    assert object_tag([]) == ("Text", "text", "explanation")
    assert label_config(["a&b", 'say "hi"'], []) == (
        "<View>\n"
        '  <Header value="labelqa issue #$issue_rank (label quality score '
        '$label_quality_score)"/>\n'
        '  <Text name="text" value="$explanation"/>\n'
        '  <Choices name="tags" toName="text" choice="multiple" showInLine="true">\n'
        '    <Choice value="a&amp;b"/>\n'
        "    <Choice value='say \"hi\"'/>\n"
        "  </Choices>\n</View>\n")


def test_tasks_turn_data_values_into_json():
    rows = [{"id": 3, "issue_rank": 2, "label_quality_score": 0.25, "given_tags": ["a"],
             "suggested_tags": ["a", "b"], "explanation": "why",
             "flagged": [{"class_name": "b", "class_index": 1, "given": False}],
             "caption": None, "taken": dt.date(2026, 1, 2), "box": {"w": 1, "h": 2}}]
    assert tasks(rows, ["caption", "taken", "box"], "labelqa d 2026-01-03") == [{
        "data": {"caption": None, "taken": "2026-01-02", "box": {"w": 1, "h": 2},
                 "labelqa_id": "3", "issue_rank": 2, "label_quality_score": 0.25,
                 "given_tags": ["a"], "suggested_tags": ["a", "b"], "explanation": "why",
                 "flagged": [{"class_name": "b", "class_index": 1, "given": False}]},
        "predictions": [{"model_version": "labelqa d 2026-01-03", "score": 0.25,
                         "result": [{"from_name": "tags", "to_name": "text",
                                     "type": "choices", "value": {"choices": ["a", "b"]}}]}]}]


# -- a real Label Studio (slow) ---------------------------------------------------------------

#: the Label Studio the slow test installs (pinned: its export format is what is tested)
LABEL_STUDIO = "label-studio==1.23.2"
TOKEN = "labelqa0test0token0" + "0123456789abcdef0123"
USER, PASSWORD = "reviewer@labelqa.test", "labelqa-test-password"


def label_studio_venv() -> Path:
    """A virtual environment with LABEL_STUDIO, made once and reused."""
    return cached_venv("label-studio-venv", [LABEL_STUDIO])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LabelStudio:
    """Label Studio's REST API as the token's user (plain urllib)."""

    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body: object = None) -> object:
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()[:2000]!r}"
                                 ) from None
        return json.loads(text) if text else None


@contextlib.contextmanager
def running_label_studio(venv: Path, data_dir: Path):
    """Label Studio on 127.0.0.1 with SQLite in `data_dir`, one user and its API token from
    the environment; stopped (its whole process group) whatever happens."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(data_dir),
           "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
           "LABEL_STUDIO_USERNAME": USER, "LABEL_STUDIO_PASSWORD": PASSWORD,
           "LABEL_STUDIO_USER_TOKEN": TOKEN,
           # 1.23 authenticates `Token <key>` headers only with legacy tokens enabled
           "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
           "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
           "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
           "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
    log = data_dir / "label-studio.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(venv / "bin" / "label-studio"), "start", "--no-browser", "--internal-host",
             "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir,
            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600  # the first start creates the database
        while True:
            if server.poll() is not None:
                pytest.fail(f"Label Studio exited {server.returncode}: "
                            f"{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Label Studio did not answer: {log.read_text()[-3000:]}")
            time.sleep(1)
        yield LabelStudio(url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.mark.slow
def test_a_real_label_studio_round_trip(spark, tmp_path):
    """The queue imported into Label Studio, verdicts recorded through its API, the project
    exported as JSON and parsed back into exactly those verdicts."""
    from labelqa.cli import main
    from labelqa.tables import partition_dir
    from tests.test_queue import CLASSES as RUN_CLASSES
    from tests.test_queue import DATASET, RUN_DATE, write_run

    output, data = str(tmp_path / "out"), str(tmp_path / "data")
    write_run(spark, output)
    spark.createDataFrame([(i, f"https://img.example/{i}.png") for i in range(10, 18)],
                          "id long, image_url string").write.parquet(data)
    queue = tmp_path / "tasks.json"
    # issue order with one of each class: 10, 11, 12, 13, 14 (c's best), 15
    assert main(["queue", "--output", output, "--dataset", DATASET, "--budget", "6",
                 "--min-per-class", "1", "--data", data, "--data-columns", "image_url",
                 "--to", str(queue), "--format", "label-studio", "--master", "local[2,2]"]) == 0
    config = Path(f"{queue}.label_config.xml").read_text()

    with running_label_studio(label_studio_venv(), tmp_path / "label-studio") as studio:
        reviewer = str(studio.call("GET", "/api/current-user/whoami")["id"])
        project = studio.call("POST", "/api/projects", {"title": "labelqa queue",
                                                        "label_config": config})["id"]
        imported = studio.call("POST", f"/api/projects/{project}/import",
                               json.loads(queue.read_text()))
        assert imported["task_count"] == 6 and imported["prediction_count"] == 6
        listed = studio.call("GET", f"/api/tasks?project={project}&page_size=100")
        listed = listed["tasks"] if isinstance(listed, dict) else listed
        task_of = {t["data"]["labelqa_id"]: t["id"] for t in listed}
        assert sorted(task_of) == ["10", "11", "12", "13", "14", "15"]

        def annotate(labelqa_id, choices, cancelled=False):
            result = [{"from_name": "tags", "to_name": "image", "type": "choices",
                       "value": {"choices": choices}}]
            return studio.call("POST", f"/api/tasks/{task_of[labelqa_id]}/annotations",
                               {"result": result, "was_cancelled": cancelled})

        reviewed = {}
        # 10: given a, a flagged extraneous: the suggestion (no tag) accepted
        reviewed["10"] = annotate("10", [])
        # 11: given b, a missing and b extraneous flagged: both rejected
        reviewed["11"] = annotate("11", ["b"])
        # 12: a missing accepted, and d (not flagged) added
        reviewed["12"] = annotate("12", ["a", "d"])
        # 13: skipped by the reviewer; 15: never opened
        annotate("13", ["d"], cancelled=True)
        # 14: first rejected, then changed to accept c
        first = annotate("14", ["a"])
        reviewed["14"] = studio.call("PATCH", f"/api/annotations/{first['id']}", {"result": [
            {"from_name": "tags", "to_name": "image", "type": "choices",
             "value": {"choices": ["a", "c"]}}]})
        export = studio.call("GET", f"/api/projects/{project}/export?exportType=JSON"
                                    "&download_all_tasks=true")

    export_path = tmp_path / "export.json"
    export_path.write_text(json.dumps(export))
    rows, skipped = verdicts_from_export(json.loads(export_path.read_text()), RUN_CLASSES)
    # the time of each task's last annotation, as the API returned it (Python 3.11 reads "Z")
    at = {i: dt.datetime.fromisoformat(a["updated_at"]) for i, a in reviewed.items()}
    expected = [("10", "a", "confirmed"), ("11", "a", "rejected"), ("11", "b", "rejected"),
                ("12", "a", "confirmed"), ("12", "d", "corrected"), ("14", "c", "confirmed")]
    assert sorted(rows, key=lambda r: (r["id"], r["class_name"])) == [
        {"id": i, "class_name": c, "verdict": v, "reviewer": reviewer, "reviewed_at": at[i]}
        for i, c, v in expected]
    assert skipped == 2
    assert at["14"] > at["12"]  # the edit's time, not the first annotation's
    # the export as it is, into `labelqa reviews`: the stored verdicts are the recorded ones
    assert main(["reviews", "--output", output, "--dataset", DATASET,
                 "--reviews", str(export_path), "--master", "local[2,2]"]) == 0
    stored = spark.read.parquet(partition_dir(output, "reviews", DATASET, RUN_DATE))
    assert sorted((r["id"], r["class_name"], r["verdict"], r["flagged"], r["reviewer"],
                   r["source"]) for r in stored.collect()) == [
        (int(i), c, v, v != "corrected", reviewer, "label-studio") for i, c, v in expected]

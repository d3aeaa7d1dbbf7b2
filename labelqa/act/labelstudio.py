"""Label Studio's side of the review queue: the task import JSON (the suggested tags as a
pre-annotation), the labeling config that shows them, and the parser of a Label Studio JSON
export back into verdicts on the queued pairs.

Pure Python on the queue's rows (at most the user's budget of them) and on an export.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from xml.sax.saxutils import quoteattr

from labelqa.errors import InputError

#: the Choices tag that holds a reviewer's tags (the prediction's and the export's from_name)
CHOICES_NAME = "tags"
#: the labelqa keys of a task's data (data columns may not use them)
TASK_KEYS = ("labelqa_id", "issue_rank", "label_quality_score", "given_tags", "suggested_tags",
             "explanation", "flagged")
#: data columns shown as an image rather than a text
IMAGE_COLUMN = re.compile(r"(.*_)?(image|img|picture|photo|url|uri)(_(url|uri|path|link))?",
                          re.IGNORECASE)
#: Label Studio reads a task field through `$name`: a name it can parse
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EXPORT = "reviews"  # the table an export's errors name


def object_tag(data_columns: Sequence[str]) -> tuple[str, str, str]:
    """(tag, name, field) of the object the Choices label: an `<Image>` of the first column
    named like an image URL, else a `<Text>` of the first data column, else of the
    explanation."""
    for name in data_columns:
        if IMAGE_COLUMN.fullmatch(name):
            return "Image", "image", name
    return "Text", "text", data_columns[0] if data_columns else "explanation"


def label_config(class_names: Sequence[str], data_columns: Sequence[str]) -> str:
    """The labeling config XML: every class as a choice (several may be chosen), over the
    object of `object_tag`, with the explanation beside it."""
    tag, name, field = object_tag(data_columns)
    lines = ["<View>",
             '  <Header value="labelqa issue #$issue_rank (label quality score '
             '$label_quality_score)"/>',
             f"  <{tag} name={quoteattr(name)} value={quoteattr('$' + field)}/>"]
    if field != "explanation":
        lines.append('  <Text name="explanation" value="$explanation"/>')
    lines.append(f"  <Choices name={quoteattr(CHOICES_NAME)} toName={quoteattr(name)} "
                 'choice="multiple" showInLine="true">')
    lines += [f"    <Choice value={quoteattr(c)}/>" for c in class_names]
    lines += ["  </Choices>", "</View>", ""]
    return "\n".join(lines)


def check_field_names(data_columns: Sequence[str]) -> None:
    """Data columns must be names Label Studio can address (`$name`) and not labelqa's keys."""
    for name in data_columns:
        if not FIELD_NAME.fullmatch(name) or name in TASK_KEYS:
            raise InputError("data", name, "cannot be a field of a Label Studio task: use "
                             "letters, digits and '_' and none of labelqa's keys "
                             f"({', '.join(TASK_KEYS)}); rename the column in the data table")


def tasks(rows: Iterable[Mapping], data_columns: Sequence[str], model_version: str
          ) -> list[dict]:
    """One task per queued row (keys of `labelqa.act.queue.QUEUE_COLUMNS` plus the data
    columns), the suggested tags as a prediction."""
    _, to_name, _ = object_tag(data_columns)
    out = []
    for row in rows:
        data = {c: jsonable(row[c]) for c in data_columns}
        data.update({
            "labelqa_id": str(row["id"]),
            "issue_rank": int(row["issue_rank"]),
            "label_quality_score": float(row["label_quality_score"]),
            "given_tags": list(row["given_tags"]),
            "suggested_tags": list(row["suggested_tags"]),
            "explanation": row["explanation"] or "",
            "flagged": [{"class_name": p["class_name"], "class_index": int(p["class_index"]),
                         "given": bool(p["given"])} for p in row["flagged"]],
        })
        out.append({"data": data, "predictions": [{
            "model_version": model_version, "score": float(row["label_quality_score"]),
            "result": [{"from_name": CHOICES_NAME, "to_name": to_name, "type": "choices",
                        "value": {"choices": list(row["suggested_tags"])}}]}]})
    return out


def jsonable(value: object) -> object:
    """A data column's value as JSON holds it (dates and decimals as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def verdicts_from_export(tasks: object, class_names: Sequence[str]) -> tuple[list[dict], int]:
    """Verdict rows of a Label Studio JSON export of a queue's project, and the number of
    tasks skipped (no annotation, or every one cancelled).

    A task's latest non-cancelled annotation holds the reviewer's final tag set. Per flagged
    pair: `confirmed` when the final state is the suggested one (the given state toggled),
    `rejected` when it is the given one; a class not flagged whose state changed is
    `corrected`. Rows: `id` (the task's `data.labelqa_id`), `class_name`, `verdict`,
    `reviewer` (the annotator's email or user id, or None), `reviewed_at` (aware datetime or
    None); in task order, classes in class order.
    """
    if not isinstance(tasks, list):
        raise InputError(EXPORT, None, "a Label Studio JSON export is a list of tasks, not a "
                         f"{type(tasks).__name__} (export the project as JSON)")
    order = {name: k for k, name in enumerate(class_names)}
    rows: list[dict] = []
    skipped = 0
    for index, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "labelqa_id" not in data:
            raise InputError(EXPORT, "data.labelqa_id", f"task {index} has no data.labelqa_id: "
                             "not a task of a labelqa queue")
        task_id = str(data["labelqa_id"])
        where = f"task {index} (labelqa_id {task_id!r})"
        annotation = _latest(task.get("annotations") or [], where)
        if annotation is None:
            skipped += 1
            continue
        final = _choices(annotation, order, where)
        given = _known(data.get("given_tags"), order, where, "data.given_tags")
        flagged = _flagged(data.get("flagged"), order, where)
        reviewer = _reviewer(annotation.get("completed_by"))
        reviewed_at = _timestamp(annotation.get("updated_at") or annotation.get("created_at"),
                                 where)
        for name in sorted(set(flagged) | (final ^ given), key=order.__getitem__):
            now, was = name in final, name in given
            if name in flagged:
                verdict = "rejected" if now == was else "confirmed"
            else:
                verdict = "corrected"
            rows.append({"id": task_id, "class_name": name, "verdict": verdict,
                         "reviewer": reviewer, "reviewed_at": reviewed_at})
    return rows, skipped


def _latest(annotations: object, where: str) -> dict | None:
    if not isinstance(annotations, list):
        raise InputError(EXPORT, "annotations", f"{where}: annotations is not a list")
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return None
    # ISO 8601 text of one server sorts by time; the annotation id breaks ties
    return max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                                    a.get("id") or 0))


def _choices(annotation: dict, order: Mapping[str, int], where: str) -> set[str]:
    """The tags chosen in the annotation's `tags` Choices (none chosen: an empty result)."""
    chosen: list = []
    for item in annotation.get("result") or []:
        if isinstance(item, dict) and item.get("from_name") == CHOICES_NAME \
                and item.get("type") == "choices":
            chosen += (item.get("value") or {}).get("choices") or []
    return _known(chosen, order, where, "annotations.result")


def _known(names: object, order: Mapping[str, int], where: str, column: str) -> set[str]:
    if not isinstance(names, list):
        raise InputError(EXPORT, column, f"{where}: {column} is not a list")
    for name in names:
        if name not in order:
            raise InputError(EXPORT, column, f"{where}: {name!r} is not a class of the run "
                             f"(classes: {', '.join(order)})")
    return set(names)


def _flagged(pairs: object, order: Mapping[str, int], where: str) -> set[str]:
    if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
        raise InputError(EXPORT, "data.flagged", f"{where}: data.flagged is not a list of "
                         "pairs")
    return _known([p.get("class_name") for p in pairs], order, where, "data.flagged")


def _reviewer(completed_by: object) -> str | None:
    """Label Studio writes the annotator's user id, or (some versions) the user object."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    return None if completed_by is None else str(completed_by)


def _timestamp(text: object, where: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        # Python 3.10's fromisoformat reads neither "Z" nor more than 6 fraction digits
        value = dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1",
                                                 str(text).replace("Z", "+00:00")))
    except ValueError:
        raise InputError(EXPORT, "annotations.updated_at",
                         f"{where}: {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)

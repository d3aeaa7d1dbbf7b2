"""The intake's per-id rules as vectorised NumPy steps over rows sorted by id.

The engine brings both input tables' checked rows of every id together, sorted by
(id, table, class, fingerprint), and calls `decide` on runs of whole ids. Each rule is one
named step here, and the only copy of it:

1. `find_copies`: a row equal to its predecessor (same id, table and fingerprint) is an exact
   copy and collapses;
2. `table_groups`: per (id, table), the rows kept, the distinct classes among them (more rows
   than classes is a conflicting duplicate), the first rejected row;
3. `table_verdicts`: per id and table, whether the table's side of the example is acceptable
   (no conflict, no rejected row, all K class rows for long predictions);
4. `row_states`: each row's final state, in the order of precedence of the contract: its own
   copy or fault, then its table's conflict, a rejected sibling, an incomplete set of class
   rows, then a missing partner;
5. `lead_rows`: the one row of each audited example that carries its joined vectors (its
   prediction row, or the one of class 0).

Rows in = audited + quarantined + collapsed holds by construction: every row gets one state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import SupportsIndex

import numpy as np

from labelqa.core.arrays import Indices, Ints, Mask, Values

LABELS, PREDICTIONS = 0, 1
SOURCES = ("labels", "predictions")
OK, QUARANTINED, COLLAPSED = 0, 1, 2
STATUSES = ("ok", "quarantined", "collapsed")


@dataclass(frozen=True)
class SortedRows:
    """Checked rows of both tables, sorted by (id, table, class, fingerprint), whole ids only.

    `same_id[i]`: row i has the id of row i - 1 (false for a null id and for the first row);
    `unit`: the class of a long-format row, -1 where the format has one row per id;
    `reason`, `detail`, `column`: the row's own first broken rule (None: none).
    """

    same_id: Mask
    id_null: Mask
    source: Indices
    unit: Indices
    fingerprint: Values
    reason: Values
    detail: Values
    column: Values

    @property
    def num_rows(self) -> int:
        return len(self.source)


@dataclass(frozen=True)
class IntakeRules:
    """What the rules need to know of the formats."""

    labels_one_row_per_id: bool
    predictions_one_row_per_id: bool
    expected_prediction_rows: int | None  # K for long predictions
    empty_when_unlabeled: bool  # long labels: an id without tag rows has no tags
    #: what the other table's rows are, in the reason and detail of a label row without one:
    #: `missing_prediction` (the audit), `missing_features` (labelqa predict)
    partner: str = "prediction"


@dataclass(frozen=True)
class RowStates:
    status: Indices  # OK / QUARANTINED / COLLAPSED per row
    reason: Values
    detail: Values
    column: Values
    lead: Mask  # the row carries an audited example
    id_index: Indices  # the index of the row's id among the ids of the run


def find_copies(rows: SortedRows) -> Mask:
    """Rows that repeat their predecessor exactly (same id, table and fingerprint)."""
    copies = np.zeros(rows.num_rows, dtype=bool)
    copies[1:] = (rows.same_id[1:] & (rows.source[1:] == rows.source[:-1])
                  & (rows.fingerprint[1:] == rows.fingerprint[:-1]))
    return copies


@dataclass(frozen=True)
class TableGroups:
    """Per (id, table) group of consecutive rows."""

    starts: Indices  # first row of each group
    group_of_row: Indices
    source: Indices
    id_index: Indices  # the group's id, as the index of the id's run
    kept: Ints  # rows kept (not copies, id not null)
    classes: Ints  # distinct classes among the group's rows
    rejected: Ints  # the group's first rejected kept row (-1: none)


def table_groups(rows: SortedRows, kept: Mask) -> tuple[TableGroups, Indices]:
    """The (id, table) groups and, per row, the index of its id's run."""
    n = rows.num_rows
    id_start = ~rows.same_id
    id_index = np.cumsum(id_start) - 1
    group_start = id_start.copy()
    group_start[1:] |= rows.source[1:] != rows.source[:-1]
    starts = np.flatnonzero(group_start)
    group_of_row = np.cumsum(group_start) - 1
    kept_count = np.add.reduceat(kept.astype(np.int64), starts) if n else np.zeros(0, np.int64)
    # copies repeat their predecessor's class, so distinct classes = changes of class
    new_class = group_start.copy()
    new_class[1:] |= rows.unit[1:] != rows.unit[:-1]
    classes = np.add.reduceat(new_class.astype(np.int64), starts) if n else kept_count
    rejected = np.full(len(starts), -1, dtype=np.int64)
    faulty = np.flatnonzero(kept & (rows.reason != None))  # noqa: E711 - object array
    # the least (reason, detail, column) of the group, as Spark's min over structs
    for row in faulty:
        group = group_of_row[row]
        best = rejected[group]
        if best < 0 or _fault(rows, row) < _fault(rows, best):
            rejected[group] = row
    return TableGroups(starts, group_of_row, rows.source[starts], id_index[starts], kept_count,
                       classes, rejected), id_index


def _fault(rows: SortedRows, row: SupportsIndex) -> tuple[str, str, str]:
    return (rows.reason[row], rows.detail[row] or "", rows.column[row] or "")


@dataclass(frozen=True)
class TableVerdicts:
    """Per id run and table (index [id, table]): the group index (-1: no rows), the rows
    kept, conflict, the rejected row (-1: none), too few class rows, acceptable."""

    group: Ints
    kept: Ints
    conflict: Mask
    rejected: Ints
    incomplete: Mask
    ok: Mask


def table_verdicts(groups: TableGroups, num_ids: int, rules: IntakeRules) -> TableVerdicts:
    group = np.full((num_ids, 2), -1, dtype=np.int64)
    group[groups.id_index, groups.source] = np.arange(len(groups.starts))
    present = group >= 0
    safe = np.where(present, group, 0)
    kept = np.where(present, groups.kept[safe], 0)
    conflict = present & (kept > groups.classes[safe])
    rejected = np.where(present, groups.rejected[safe], -1)
    incomplete = np.zeros((num_ids, 2), dtype=bool)
    if rules.expected_prediction_rows:
        incomplete[:, PREDICTIONS] = kept[:, PREDICTIONS] != rules.expected_prediction_rows
    ok = (kept > 0) & ~conflict & (rejected < 0) & ~incomplete
    return TableVerdicts(group, kept, conflict, rejected, incomplete, ok)


CONFLICT_DETAIL = {True: "the id has differing rows",
                   False: "a class of this id has rows with differing values"}


def row_states(rows: SortedRows, kept: Mask, id_index: Indices,
               verdicts: TableVerdicts, rules: IntakeRules) -> RowStates:
    n = rows.num_rows
    source = rows.source.astype(np.int64)
    mine = (id_index, source)
    status = np.full(n, OK, dtype=np.int8)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)
    column = np.full(n, None, dtype=object)
    decided = np.zeros(n, dtype=bool)

    def assign(where: Mask, state: int, why: str | Values | None, text: str | Values | None,
               col: str | Values | None) -> None:
        chosen = where & ~decided
        status[chosen] = state
        for target, value in ((reason, why), (detail, text), (column, col)):
            target[chosen] = value[chosen] if isinstance(value, np.ndarray) else value
        decided[chosen] = True

    assign(~rows.id_null & ~kept, COLLAPSED, None, None, None)
    assign(rows.reason != None, QUARANTINED, rows.reason, rows.detail, rows.column)  # noqa: E711
    conflict_text = np.where(source == LABELS, CONFLICT_DETAIL[rules.labels_one_row_per_id],
                             CONFLICT_DETAIL[rules.predictions_one_row_per_id]).astype(object)
    assign(verdicts.conflict[mine], QUARANTINED, "duplicate_id", conflict_text, "id")
    sibling = verdicts.rejected[mine]
    rejected_rows = np.flatnonzero((sibling >= 0) & ~decided)
    if len(rejected_rows):
        at = sibling[rejected_rows]
        status[rejected_rows] = QUARANTINED
        reason[rejected_rows] = rows.reason[at]
        detail[rejected_rows] = ["another row of this id was rejected: " + (d or "")
                                 for d in rows.detail[at]]
        column[rejected_rows] = rows.column[at]
        decided[rejected_rows] = True
    incomplete = verdicts.incomplete[mine] & ~decided
    if incomplete.any():
        counts = verdicts.kept[mine]
        text = np.array([f"has {c} of K={rules.expected_prediction_rows} class rows"
                         for c in counts[incomplete]], dtype=object)
        full = np.full(n, None, dtype=object)
        full[incomplete] = text
        assign(incomplete, QUARANTINED, "wrong_length", full, "id")
    is_labels = source == LABELS
    assign(is_labels & ~verdicts.ok[id_index, PREDICTIONS], QUARANTINED,
           f"missing_{rules.partner}", f"no {rules.partner} row for this id", "id")
    # with long labels an id without any tag row may be an example with no tags; an id whose
    # tag rows were all rejected is not
    unlabeled_is_empty = (np.zeros(n, dtype=bool) if not rules.empty_when_unlabeled
                          else verdicts.group[id_index, LABELS] < 0)
    assign(~is_labels & ~verdicts.ok[id_index, LABELS] & ~unlabeled_is_empty, QUARANTINED,
           "missing_labels", "no accepted labels row for this id", "id")
    lead = (status == OK) & ~is_labels & (rows.unit <= 0)
    return RowStates(status, reason, detail, column, lead, id_index)


def decide(rows: SortedRows, rules: IntakeRules) -> RowStates:
    """Every row's state (steps 1-5 above)."""
    copies = find_copies(rows)
    kept = ~rows.id_null & ~copies
    groups, id_index = table_groups(rows, kept)
    num_ids = int(id_index[-1]) + 1 if rows.num_rows else 0
    verdicts = table_verdicts(groups, num_ids, rules)
    return row_states(rows, kept, id_index, verdicts, rules)

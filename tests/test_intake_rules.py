"""The intake's per-id rules (labelqa.core.intake), step by step, on hand-made sorted rows.

Each case is a run of rows as the engine hands them over: both tables' checked rows sorted by
(id, table, class, fingerprint). The Spark-level consequences (quarantine table, counts) are
covered by tests/test_malformed.py.
"""

from __future__ import annotations

import numpy as np

from labelqa.core import intake as rules
from labelqa.core.intake import COLLAPSED, LABELS, OK, PREDICTIONS, QUARANTINED

ONE_ROW = rules.IntakeRules(labels_one_row_per_id=True, predictions_one_row_per_id=True,
                            expected_prediction_rows=None, empty_when_unlabeled=False)
LONG = rules.IntakeRules(labels_one_row_per_id=False, predictions_one_row_per_id=False,
                         expected_prediction_rows=2, empty_when_unlabeled=True)


def rows(*spec) -> rules.SortedRows:
    """spec: (id or None, table, class or -1, fingerprint, reason or None)."""
    ids = [s[0] for s in spec]
    same = [i > 0 and ids[i] is not None and ids[i] == ids[i - 1] for i in range(len(ids))]
    reasons = np.array([s[4] for s in spec], dtype=object)
    return rules.SortedRows(
        same_id=np.array(same), id_null=np.array([i is None for i in ids]),
        source=np.array([s[1] for s in spec], dtype=np.int8),
        unit=np.array([s[2] for s in spec], dtype=np.int64),
        fingerprint=np.array([s[3] for s in spec], dtype=np.int64), reason=reasons,
        detail=np.array([None if r is None else f"detail of {r}" for r in reasons],
                        dtype=object),
        column=np.array([None if r is None else "col" for r in reasons], dtype=object))


def states(sorted_rows, decision=ONE_ROW):
    decided = rules.decide(sorted_rows, decision)
    return list(zip(decided.status.tolist(), decided.reason.tolist())), decided


def test_an_exact_copy_collapses_and_the_example_is_audited():
    found, decided = states(rows((1, LABELS, -1, 7, None), (1, LABELS, -1, 7, None),
                                 (1, PREDICTIONS, -1, 9, None)))
    assert found == [(OK, None), (COLLAPSED, None), (OK, None)]
    assert decided.lead.tolist() == [False, False, True]


def test_copies_need_the_same_table_and_id():
    copies = rules.find_copies(rows((1, LABELS, -1, 7, None), (1, PREDICTIONS, -1, 7, None),
                                    (2, PREDICTIONS, -1, 7, None)))
    assert copies.tolist() == [False, False, False]


def test_differing_rows_of_one_id_quarantine_the_example_and_its_partner():
    found, decided = states(rows((1, LABELS, -1, 7, None), (1, LABELS, -1, 8, None),
                                 (1, PREDICTIONS, -1, 9, None)))
    assert found == [(QUARANTINED, "duplicate_id"), (QUARANTINED, "duplicate_id"),
                     (QUARANTINED, "missing_labels")]
    assert decided.detail[0] == "the id has differing rows"
    assert not decided.lead.any()


def test_a_rows_own_fault_comes_before_its_tables_verdict():
    found, decided = states(rows((1, LABELS, -1, 7, "bad_label_index"),
                                 (1, LABELS, -1, 8, None), (1, PREDICTIONS, -1, 9, None)))
    assert found[0] == (QUARANTINED, "bad_label_index")
    assert found[1] == (QUARANTINED, "duplicate_id")


def test_a_rejected_row_takes_its_long_siblings_and_the_partner_rows_with_it():
    found, decided = states(rows((1, LABELS, 0, 1, None), (1, LABELS, 1, 2, "unknown_class"),
                                 (1, PREDICTIONS, 0, 3, None), (1, PREDICTIONS, 1, 4, None)),
                            LONG)
    assert found == [(QUARANTINED, "unknown_class"), (QUARANTINED, "unknown_class"),
                     (QUARANTINED, "missing_labels"), (QUARANTINED, "missing_labels")]
    assert decided.detail[0] == "another row of this id was rejected: detail of unknown_class"


def test_long_predictions_need_every_class_row():
    found, decided = states(rows((1, LABELS, 0, 1, None), (1, PREDICTIONS, 0, 3, None)), LONG)
    assert found == [(QUARANTINED, "missing_prediction"), (QUARANTINED, "wrong_length")]
    assert decided.detail[1] == "has 1 of K=2 class rows"


def test_an_id_without_tag_rows_is_an_example_without_tags_when_configured():
    found, decided = states(rows((1, PREDICTIONS, 0, 3, None), (1, PREDICTIONS, 1, 4, None),
                                 (2, LABELS, 0, 1, "unknown_class"),
                                 (2, PREDICTIONS, 0, 5, None), (2, PREDICTIONS, 1, 6, None)),
                            LONG)
    assert found[:2] == [(OK, None), (OK, None)]
    assert decided.lead.tolist() == [True, False, False, False, False]  # class 0 leads
    # id 2 had a tag row, rejected: its predictions have no accepted labels
    assert found[3:] == [(QUARANTINED, "missing_labels"), (QUARANTINED, "missing_labels")]


def test_null_ids_are_quarantined_one_by_one_and_never_collapse():
    found, _ = states(rows((None, LABELS, -1, 7, "null_id"), (None, LABELS, -1, 7, "null_id"),
                           (3, LABELS, -1, 1, None), (3, PREDICTIONS, -1, 2, None)))
    assert found == [(QUARANTINED, "null_id"), (QUARANTINED, "null_id"), (OK, None),
                     (OK, None)]


def test_every_row_gets_exactly_one_state():
    sorted_rows = rows((1, LABELS, -1, 7, None), (1, LABELS, -1, 7, None),
                       (2, PREDICTIONS, -1, 9, None), (3, LABELS, -1, 1, None),
                       (3, PREDICTIONS, -1, 1, "non_finite"))
    decided = rules.decide(sorted_rows, ONE_ROW)
    assert len(decided.status) == sorted_rows.num_rows
    assert set(decided.status.tolist()) <= {OK, QUARANTINED, COLLAPSED}
    assert decided.reason.tolist() == ["missing_prediction", None, "missing_labels",
                                       "missing_prediction", "non_finite"]

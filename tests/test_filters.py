"""Issue 18 items 3 and 4: one definition per filter, chosen by name, and a core that imports
nothing above it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

from labelqa import config
from labelqa.core.filters import FILTERS, LOW_FILTERS, PRUNE_FILTERS, filter_named
from labelqa.core.params import IssuesParams

CORE = Path(__file__).resolve().parents[1] / "labelqa" / "core"
EVERY = ("annotated on every example: with no example lacking it there is nothing to compare "
         "against; not judged")


def test_the_registry_holds_the_contract_filters_in_order():
    assert FILTERS == ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                       "predicted_neq_given", "low_self_confidence", "low_normalized_margin")
    assert PRUNE_FILTERS == ("prune_by_noise_rate", "prune_by_class", "both")
    assert LOW_FILTERS == ("low_self_confidence", "low_normalized_margin")
    assert (config.FILTERS, config.PRUNE_FILTERS, config.LOW_FILTERS) == (
        FILTERS, PRUNE_FILTERS, LOW_FILTERS)
    assert [filter_named(name).name for name in FILTERS] == list(FILTERS)
    assert IssuesParams("both").filter is filter_named("both")
    with pytest.raises(ValueError, match="^unknown filter 'nope'; expected one of "
                                         "prune_by_noise_rate, prune_by_class, both, "):
        filter_named("nope")


def test_each_filter_says_what_it_takes_and_what_it_can_judge():
    traits = {name: (f.prunes, f.estimates_joint, f.judges_one_sided, f.ranks_examples)
              for name, f in ((n, filter_named(n)) for n in FILTERS)}
    assert traits == {
        "prune_by_noise_rate": (True, False, True, False),
        "prune_by_class": (True, False, True, False),
        "both": (True, False, True, False),
        "confident_learning": (False, True, True, False),
        "predicted_neq_given": (False, False, False, False),
        "low_self_confidence": (False, False, False, True),
        "low_normalized_margin": (False, False, False, True),
    }
    num_given = np.array([3, 0, 1])
    for name in FILTERS:
        chosen = filter_named(name)
        one_sided = (None if chosen.judges_one_sided else
                     f"annotated on no example: filter_by={name} cannot judge a class with "
                     "one side only; not judged")
        assert chosen.notes(num_given, 3) == (EVERY, one_sided, None)
        assert chosen.judged(num_given, 3).tolist() == [False, one_sided is None, True]
        # cleanlab's find_label_issues: a filter ranking whole examples judges one side too
        examples_only = None if chosen.ranks_examples else one_sided
        assert chosen.notes(num_given, 3, examples_only=True) == (EVERY, examples_only, None)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_core_imports_only_itself_numpy_and_the_standard_library():
    outside: dict[str, set[str]] = {}
    for path in sorted(CORE.glob("*.py")):
        for module in _imports(path):
            root = module.split(".")[0]
            inside = module == "labelqa.core" or module.startswith("labelqa.core.")
            if not (inside or root in ("numpy", "__future__") or root in sys.stdlib_module_names):
                outside.setdefault(path.name, set()).add(module)
    assert outside == {}

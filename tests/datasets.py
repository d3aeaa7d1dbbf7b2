"""The generated datasets the parity tests run on (each covers a case the contract names)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from labelqa.sample import Sample, generate


@dataclass(frozen=True)
class Case:
    name: str
    sample: Sample


def _with_class_everywhere(sample: Sample, k: int) -> Sample:
    given = sample.given.copy()
    given[:, k] = True
    return replace(sample, given=given)


def _prevalence(num_classes: int, seed: int, rare: dict[int, float]) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(0.08, 0.45, num_classes)
    for k, p in rare.items():
        values[k] = p
    return values


def parity_cases() -> list[Case]:
    return [
        Case("float64-int-ids", generate(1500, 6, 11)),
        Case("float32-string-ids", generate(1500, 6, 12, dtype=np.float32, string_ids=True)),
        Case("rare-and-absent-classes", generate(
            2000, 8, 13, prevalence=_prevalence(8, 13, {2: 0.004, 5: 0.0}),
            extra_rate=0.0)),
        Case("class-on-every-example", _with_class_everywhere(generate(1200, 5, 14), 3)),
        Case("two-classes", generate(900, 2, 15)),
        Case("thirty-two-classes-float32", generate(1200, 32, 16, dtype=np.float32)),
        Case("rounded-2-decimals", generate(1500, 6, 17, decimals=2)),
        Case("rounded-float32-string-ids", generate(1500, 7, 18, decimals=2, dtype=np.float32,
                                                    string_ids=True)),
    ]

"""The array types of the core, named once (for the type checker; NumPy does not check dtypes)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

#: bool per row, class, pair or group
Mask = NDArray[np.bool_]
#: counts and indices
Ints = NDArray[np.int64]
#: scores, keys, thresholds
Floats = NDArray[np.float64]
#: predicted probabilities: float32 or float64, as the input holds them
Probabilities = NDArray[np.floating[Any]]
#: example ids (int64, or str objects) and object columns
Values = NDArray[Any]
#: row, class and group indices (int32 where they fit, or int64)
Indices = NDArray[np.integer[Any]]

"""Whether an analysis' inputs look like what its model was trained on.

Each batch summarises the clear (not gap-filled) composite values it read as
:class:`InputMoments` per time bin and band; the flow adds them up and compares them
with the training inputs' statistics that the model version keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class InputMoments:
    """Per (time bin, band): how many clear values were seen, their sum and sum of squares.
    Moments add up across batches, so the whole AOI's mean and spread come out exactly."""

    count: npt.NDArray[np.float64]  # (time, band)
    total: npt.NDArray[np.float64]
    squares: npt.NDArray[np.float64]

    @classmethod
    def of_cube(cls, cube: npt.NDArray[np.floating]) -> InputMoments:
        """The moments of a ``(time, band, y, x)`` composite; NaN (no clear view) is skipped."""
        values = np.asarray(cube, dtype=np.float64)
        seen = ~np.isnan(values)
        clean = np.where(seen, values, 0.0)
        return cls(seen.sum(axis=(2, 3)).astype(np.float64), clean.sum(axis=(2, 3)), (clean**2).sum(axis=(2, 3)))

    @classmethod
    def empty(cls, bins: int, bands: int) -> InputMoments:
        zeros = np.zeros((bins, bands), dtype=np.float64)
        return cls(zeros, zeros.copy(), zeros.copy())

    def __add__(self, other: InputMoments) -> InputMoments:
        return InputMoments(self.count + other.count, self.total + other.total, self.squares + other.squares)

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        """NaN where nothing was seen."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.total / self.count

    @property
    def std(self) -> npt.NDArray[np.float64]:
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = self.squares / self.count - self.mean**2
        return np.sqrt(np.clip(variance, 0.0, None))

    def as_record(self) -> dict[str, Any]:
        """JSON-ready: nested lists of (time, band)."""
        return {"count": self.count.tolist(), "total": self.total.tolist(), "squares": self.squares.tolist()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> InputMoments:
        return cls(*(np.asarray(record[key], dtype=np.float64) for key in ("count", "total", "squares")))

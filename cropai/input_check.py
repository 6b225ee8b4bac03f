"""Whether an analysis' inputs look like what its model was trained on.

Each batch summarises the clear (not gap-filled) composite values it read as
:class:`InputMoments` per time bin and band; the flow adds them up and compares them
with the training inputs' statistics that the model version keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cropai.errors import InvalidInput

if TYPE_CHECKING:
    from cropai.composite import TimeBin


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
        planes = (*cube.shape[:2], -1)  # (time, band, pixel)
        seen = ~np.isnan(cube)
        clean = np.where(seen, cube, 0).reshape(planes).astype(np.float64)
        count = np.count_nonzero(seen.reshape(planes), axis=2).astype(np.float64)
        return cls(count, clean.sum(axis=2), np.einsum("tbp,tbp->tb", clean, clean))

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


QUANTILES = {"p02": 0.02, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p98": 0.98}


def bin_labels(bins: Sequence[TimeBin]) -> list[str]:
    """How bins are named to a user: ``2019-04`` for a calendar month, else the bin's first day."""
    return [
        f"{b.start:%Y-%m}"
        if b.start.day == 1 and (b.end + timedelta(days=1)).day == 1 and b.start.month == b.end.month
        else b.start.isoformat()
        for b in bins
    ]


@dataclass(frozen=True)
class TrainingInputStatistics:
    """What a model version's inputs looked like: per (time bin, band) of its training composites,
    the clear (not gap-filled) values' count, mean, standard deviation and quantiles, in
    reflectance (0..1). Arrays are (time, band); ``quantiles`` is (quantile, time, band) in the
    order of :data:`QUANTILES`. NaN where no value was seen."""

    bands: tuple[str, ...]
    bins: tuple[str, ...]  # labels, see :func:`bin_labels`
    count: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    quantiles: npt.NDArray[np.float64]

    @classmethod
    def of_cube(
        cls,
        cube: npt.NDArray[np.floating],
        mask: npt.NDArray[np.bool_],
        bands: Sequence[str],
        bins: Sequence[str],
    ) -> TrainingInputStatistics:
        """The statistics of a ``(time, band, y, x)`` composite over the values ``mask`` keeps:
        (y, x) for the same pixels in every bin (the training fields), or (time, y, x) to drop
        the values a bin did not see clear; NaN counts as unseen too."""
        values = np.asarray(cube)
        times, band_count = values.shape[:2]
        if (times, band_count) != (len(bins), len(bands)):
            raise InvalidInput(f"a cube of {times} bins x {band_count} bands, labelled {len(bins)} x {len(bands)}")
        keep = np.broadcast_to(mask, (times, *values.shape[2:]))
        count = np.zeros((times, band_count))
        mean, std = np.full((times, band_count), np.nan), np.full((times, band_count), np.nan)
        quantiles = np.full((len(QUANTILES), times, band_count), np.nan)
        for t in range(times):
            seen = values[t][:, keep[t]].astype(np.float64)  # (band, pixels)
            count[t] = (~np.isnan(seen)).sum(axis=1)
            for b in np.flatnonzero(count[t]):
                clear = seen[b][~np.isnan(seen[b])]
                mean[t, b], std[t, b] = clear.mean(), clear.std()
                quantiles[:, t, b] = np.quantile(clear, list(QUANTILES.values()))
        return cls(tuple(bands), tuple(bins), count, mean, std, quantiles)

    def as_record(self) -> dict[str, Any]:
        """JSON-ready: (time, band) nested lists, reflectance rounded to 1e-5, null where unseen."""
        return {
            "bands": list(self.bands),
            "bins": list(self.bins),
            "count": self.count.astype(np.int64).tolist(),
            "mean": _json_grid(self.mean),
            "std": _json_grid(self.std),
            **{name: _json_grid(grid) for name, grid in zip(QUANTILES, self.quantiles, strict=True)},
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainingInputStatistics:
        def grid(key: str) -> npt.NDArray[np.float64]:
            return np.array(record[key], dtype=np.float64)  # null -> NaN

        return cls(
            tuple(record["bands"]),
            tuple(record["bins"]),
            grid("count"),
            grid("mean"),
            grid("std"),
            np.stack([grid(name) for name in QUANTILES]),
        )


def _json_grid(grid: npt.NDArray[np.float64]) -> list[list[float | None]]:
    return [[None if np.isnan(v) else round(float(v), 5) for v in row] for row in grid]


# A mean shift of 1.5 training spreads: generated seasons of the training kind (other seeds,
# other landscapes) stay near 1 at most over 1 km2, a x1.3 gain reaches 1.7 and more, a
# -0.1 reflectance offset 5 and more.
DEFAULT_SHIFT_THRESHOLD = 1.5
SPREAD_FLOOR = 0.01  # reflectance: a band nearly constant in training must not make any shift huge
MIN_CLEAR_VALUES = 100  # per bin and band (1 ha at 10 m): fewer say which fields were seen, not how
WORST_SHOWN = 3


@dataclass(frozen=True)
class Shift:
    """One (time bin, band) whose analysis mean lies ``distance`` training spreads from training's."""

    bin: str
    band: str
    distance: float
    analysis_mean: float
    training_mean: float

    def describe(self) -> str:
        return (
            f"{self.band} in {self.bin} (mean {self.analysis_mean:.3f} against {self.training_mean:.3f} "
            f"in training: {self.distance:.1f} training spreads)"
        )


@dataclass(frozen=True)
class InputCheck:
    """How far an analysis' inputs lie from its model's training inputs. ``distances`` is
    (time, band), NaN where a bin and band was not compared; ``score`` the largest distance
    (0 when nothing was compared); ``worst`` the largest few beyond ``threshold``."""

    score: float
    distances: npt.NDArray[np.float64]
    worst: tuple[Shift, ...]
    threshold: float
    bands: tuple[str, ...]
    bins: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return self.score > self.threshold

    @property
    def compared(self) -> int:
        """How many (bin, band) pairs were scored."""
        return int((~np.isnan(self.distances)).sum())

    def warning(self) -> str | None:
        """A sentence for the user when the inputs differ beyond the threshold, else None."""
        if not self.flagged:
            return None
        shifts = "; ".join(shift.describe() for shift in self.worst)
        return (
            f"inputs differ from the model's training data: {shifts}; results may be unreliable: check the "
            "scenes' radiometry (offset and scale) and that the area and season are like the model's"
        )

    def as_record(self) -> dict[str, Any]:
        """JSON-ready, as stored on the analysis (``Analysis.input_check``)."""
        return {
            "score": round(self.score, 3),
            "threshold": self.threshold,
            "flagged": self.flagged,
            "compared": self.compared,
            "bands": list(self.bands),
            "bins": list(self.bins),
            "distances": [[None if np.isnan(v) else round(float(v), 3) for v in row] for row in self.distances],
            "worst": [
                {
                    "bin": s.bin,
                    "band": s.band,
                    "distance": round(s.distance, 3),
                    "analysis_mean": round(s.analysis_mean, 5),
                    "training_mean": round(s.training_mean, 5),
                }
                for s in self.worst
            ],
            "warning": self.warning(),
        }


def check_inputs(
    training: TrainingInputStatistics,
    seen: InputMoments,
    threshold: float = DEFAULT_SHIFT_THRESHOLD,
    bins: Sequence[str] | None = None,
) -> InputCheck:
    """Compare an analysis' clear composite values with its model's training inputs.

    The distance of a (time bin, band) is the standardised mean difference
    ``|mean_analysis - mean_training| / max(std_training, SPREAD_FLOOR)``: how many training
    spreads the analysis' mean moved. A radiometric fault (an offset not applied, a wrong
    scale) moves every band's mean; a landscape of the kind the model learnt from moves it
    little. The analysis' spread is not scored: another mix of fields changes it more than a
    gain does, and a gain shows in the mean already. A pair is skipped, not scored, where the
    analysis has fewer than ``MIN_CLEAR_VALUES`` clear values or training saw none.
    ``bins`` names the analysis' bins in the warning (default: the training bins' labels).
    """
    shape = (len(training.bins), len(training.bands))
    if seen.count.shape != shape:
        raise InvalidInput(
            f"the analysis saw {seen.count.shape[0]} bins x {seen.count.shape[1]} bands, its model was "
            f"trained on {shape[0]} x {shape[1]}"
        )
    scored = (seen.count >= MIN_CLEAR_VALUES) & (training.count > 0)
    with np.errstate(invalid="ignore"):
        distances = np.where(scored, np.abs(seen.mean - training.mean) / np.maximum(training.std, SPREAD_FLOOR), np.nan)
    labels = tuple(bins) if bins is not None else training.bins
    order = np.argsort(np.where(scored, distances, -np.inf), axis=None)[::-1]
    worst = tuple(
        Shift(labels[t], training.bands[b], float(distances[t, b]), float(seen.mean[t, b]), float(training.mean[t, b]))
        for t, b in (np.unravel_index(i, shape) for i in order[:WORST_SHOWN])
        if scored[t, b] and distances[t, b] > threshold
    )
    score = float(np.nanmax(distances)) if scored.any() else 0.0
    return InputCheck(score, distances, worst, threshold, training.bands, labels)

"""What a model version expects and returns, stored with its weights.

Everything a caller needs to prepare inputs lives here, so that an analysis
built today can feed a model trained last year correctly.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from cropai import sentinel2
from cropai.composite import TimeBin, monthly_bins
from cropai.crops import CLASSES

# April to September: sowing of summer crops to harvest of most of them in the northern temperate zone.
DEFAULT_MONTHS = (4, 5, 6, 7, 8, 9)


class ClassInfo(BaseModel):
    id: int
    name: str
    colour: str


class ModelContract(BaseModel):
    """The input contract and output of one model version.

    Inputs are cubes ``(batch, time, band, y, x)`` of surface reflectance (0..1):
    per time bin the median of clear observations, gaps filled linearly in time.
    Outputs are per-pixel class probabilities ``(batch, class, y, x)`` in the
    order of ``classes``.
    """

    architecture: str = "cropnet"
    architecture_params: dict[str, Any] = Field(default_factory=dict)
    bands: list[str] = Field(default_factory=lambda: list(sentinel2.BANDS))
    months: list[int] = Field(default_factory=lambda: list(DEFAULT_MONTHS))
    binning_rule: str = (
        "one bin per calendar month of the season's year; each bin is the per-pixel median of "
        "clear observations (SCL not nodata, defective, cloud, cirrus, shadow or snow); bins "
        "without a clear observation are filled linearly in time from their neighbours, "
        "then with the band mean"
    )
    reflectance_scale: int = sentinel2.REFLECTANCE_SCALE
    band_means: list[float]
    band_stds: list[float]
    classes: list[ClassInfo] = Field(
        default_factory=lambda: [ClassInfo(id=c.id, name=c.name, colour=c.colour) for c in CLASSES]
    )
    tile_size: int = 256
    overlap: int = 16
    output: str = "per-pixel class probabilities, (batch, class, y, x), float32, summing to 1"

    @property
    def time_bins_count(self) -> int:
        return len(self.months)

    def time_bins(self, year: int) -> list[TimeBin]:
        return monthly_bins(year, self.months)

    def season_window(self, year: int) -> tuple[date, date]:
        bins = self.time_bins(year)
        return bins[0].start, bins[-1].end

    @property
    def class_ids(self) -> list[int]:
        return [c.id for c in self.classes]

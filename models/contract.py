"""What a model version expects and returns, stored with its weights.

Everything a caller needs to prepare inputs lives here, so that an analysis
built today can feed a model trained last year correctly.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from cropai import sentinel2
from cropai.crops import SYNTHETIC_LEGEND
from cropai.season import Season

# April to September: sowing of summer crops to harvest of most of them in the northern temperate zone.
DEFAULT_SEASON = Season(start_month=4, bins=6)


class ClassInfo(BaseModel):
    """One class of the model's legend: its pixel value, name, colour and the label values
    (national crop codes, names) it was trained from."""

    id: int
    name: str
    colour: str
    codes: list[str] = Field(default_factory=list)


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
    season: Season = DEFAULT_SEASON
    binning_rule: str = (
        "one bin per time bin of the season; each bin is the per-pixel median of "
        "clear observations (SCL not nodata, defective, cloud, cirrus, shadow or snow); bins "
        "without a clear observation are filled linearly in time from their neighbours, "
        "then with the band mean"
    )
    reflectance_scale: int = sentinel2.REFLECTANCE_SCALE
    band_means: list[float]
    band_stds: list[float]
    classes: list[ClassInfo] = Field(
        default_factory=lambda: [ClassInfo(id=c.id, name=c.name, colour=c.colour) for c in SYNTHETIC_LEGEND.classes]
    )
    tile_size: int = 256
    overlap: int = 16
    output: str = "per-pixel class probabilities, (batch, class, y, x), float32, summing to 1"

    @model_validator(mode="before")
    @classmethod
    def _season_from_months(cls, data: Any) -> Any:
        """Contracts written before seasons had a list of calendar months instead."""
        if isinstance(data, dict) and "months" in data:
            data = {**data, "season": Season.of_contract(data)}
            del data["months"]
        return data

    @property
    def time_bins_count(self) -> int:
        return self.season.bins

    @property
    def class_ids(self) -> list[int]:
        return [c.id for c in self.classes]

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

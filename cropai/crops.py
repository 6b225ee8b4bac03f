"""The land-cover classes Crop AI maps: crops plus the non-crop covers that
surround them. Class ids are stable: they are the pixel values of label rasters
and crop maps (0 = no data / unlabelled)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LandCoverClass:
    id: int
    name: str
    colour: str  # "#rrggbb", used in crop-map colour tables and legends
    is_crop: bool

    @property
    def rgb(self) -> tuple[int, int, int]:
        return int(self.colour[1:3], 16), int(self.colour[3:5], 16), int(self.colour[5:7], 16)


UNLABELLED = 0
CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(1, "winter_wheat", "#e6c229", True),
    LandCoverClass(2, "winter_barley", "#c9a66b", True),
    LandCoverClass(3, "maize", "#f17105", True),
    LandCoverClass(4, "rapeseed", "#f5f227", True),
    LandCoverClass(5, "sunflower", "#d11149", True),
    LandCoverClass(6, "soybean", "#6610f2", True),
    LandCoverClass(7, "sugar_beet", "#1a8fe3", True),
    LandCoverClass(8, "potato", "#8e5572", True),
    LandCoverClass(9, "alfalfa", "#61c552", True),
    LandCoverClass(10, "grassland", "#a7e07a", False),
    LandCoverClass(11, "forest", "#1b5e20", False),
    LandCoverClass(12, "water", "#1f4e9c", False),
    LandCoverClass(13, "built_up", "#7a7a7a", False),
)
CLASSES_BY_ID: dict[int, LandCoverClass] = {c.id: c for c in CLASSES}
CLASSES_BY_NAME: dict[str, LandCoverClass] = {c.name: c for c in CLASSES}


def colour_table() -> dict[int, tuple[int, int, int, int]]:
    """A GDAL colour table (value -> RGBA) for label rasters and crop maps; 0 is transparent."""
    table = {UNLABELLED: (0, 0, 0, 0)}
    table.update({c.id: (*c.rgb, 255) for c in CLASSES})
    return table

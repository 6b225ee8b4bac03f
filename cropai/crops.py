"""The land-cover classes of the synthetic world (:mod:`cropai.synth`) and of the default
model trained on it: crops plus the non-crop covers that surround them. Class ids are
the pixel values of its label rasters and crop maps (0 = no data / unlabelled).
Models trained on real labels carry their users' legends instead (:mod:`cropai.legend`)."""

from __future__ import annotations

from dataclasses import dataclass

from cropai.legend import Legend, LegendClass


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


# The synthetic world's classes as a model legend; each class's code is its name.
SYNTHETIC_LEGEND = Legend(tuple(LegendClass(c.id, c.name, c.colour, (c.name,)) for c in CLASSES))


def colour_table() -> dict[int, tuple[int, int, int, int]]:
    """A GDAL colour table (value -> RGBA) for the synthetic label rasters; 0 is transparent."""
    return SYNTHETIC_LEGEND.colour_table()

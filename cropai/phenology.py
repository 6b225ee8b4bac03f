"""A small physical model of how each land-cover class looks to Sentinel-2 over a season.

Each class has a phenology: the fractions of the pixel covered by green canopy,
senescent (dry) canopy and flowers on a given day of year; the rest is bare soil.
Surface reflectance is the linear mixture of four endmember spectra weighted by
those fractions (the linear spectral mixing model, e.g. Adams et al. 1986).

Green cover follows a double logistic curve (rise around the start of season,
fall around its end), the form used by TIMESAT and the MODIS land-cover
dynamics product (Zhang et al. 2003). Between the end of season and harvest the
lost green cover turns to dry canopy; after harvest a little stubble remains.
Meadow and alfalfa are cut several times a season, which resets green cover.

Endmember spectra are typical surface reflectances (0..1) at the ten Sentinel-2
bands, read off published spectral libraries (e.g. the USGS Spectral Library v7
for green vegetation, dry grass, loam soil, water and asphalt) and rounded.
Dates are days of year for a northern-hemisphere temperate season (Western
Europe): winter cereals and rapeseed are green in spring and harvested in July,
summer crops are sown in April-May and harvested from August to October.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Reflectance at B02 B03 B04 B05 B06 B07 B08 B8A B11 B12.
GREEN_CANOPY = np.array([0.030, 0.065, 0.030, 0.100, 0.270, 0.340, 0.380, 0.400, 0.200, 0.095])
DRY_CANOPY = np.array([0.080, 0.110, 0.140, 0.180, 0.220, 0.250, 0.270, 0.290, 0.360, 0.260])
FLOWERS = np.array([0.040, 0.140, 0.120, 0.220, 0.300, 0.340, 0.370, 0.380, 0.230, 0.120])
LOAM_SOIL = np.array([0.070, 0.100, 0.140, 0.170, 0.200, 0.220, 0.230, 0.250, 0.330, 0.280])
FOREST_CANOPY = np.array([0.020, 0.040, 0.020, 0.070, 0.200, 0.270, 0.300, 0.310, 0.140, 0.060])
LEAF_LITTER = np.array([0.040, 0.060, 0.080, 0.110, 0.150, 0.170, 0.180, 0.190, 0.220, 0.150])
WATER = np.array([0.060, 0.060, 0.040, 0.030, 0.020, 0.015, 0.012, 0.010, 0.005, 0.003])
IMPERVIOUS = np.array([0.100, 0.115, 0.130, 0.150, 0.170, 0.180, 0.190, 0.200, 0.240, 0.220])


@dataclass(frozen=True)
class Phenology:
    """Cover fractions over a season. Days are days of year; fractions are 0..1.

    ``start_doy``/``end_doy``: mid-points of green-up and of senescence;
    ``rise_days``/``fall_days``: how quickly those happen; ``winter_green``: cover
    before green-up (winter cereals are already emerged); ``peak_green``: maximum
    cover; ``harvest_doy``: the canopy is removed (None = never); ``flowering``:
    (start, end, fraction) of flower cover; ``cut_every_days``: mowing interval
    after ``start_doy`` (grassland, alfalfa).
    """

    start_doy: float
    end_doy: float
    rise_days: float = 10.0
    fall_days: float = 8.0
    winter_green: float = 0.0
    peak_green: float = 0.9
    harvest_doy: float | None = None
    flowering: tuple[float, float, float] | None = None
    cut_every_days: float | None = None
    canopy: tuple[float, ...] = tuple(GREEN_CANOPY)
    background: tuple[float, ...] = tuple(LOAM_SOIL)
    senescent: tuple[float, ...] = tuple(DRY_CANOPY)

    def shifted(self, days: float) -> Phenology:
        """The same crop sown ``days`` later (negative: earlier)."""
        return Phenology(
            start_doy=self.start_doy + days,
            end_doy=self.end_doy + days,
            rise_days=self.rise_days,
            fall_days=self.fall_days,
            winter_green=self.winter_green,
            peak_green=self.peak_green,
            harvest_doy=None if self.harvest_doy is None else self.harvest_doy + days,
            flowering=None
            if self.flowering is None
            else (self.flowering[0] + days, self.flowering[1] + days, self.flowering[2]),
            cut_every_days=self.cut_every_days,
            canopy=self.canopy,
            background=self.background,
            senescent=self.senescent,
        )

    def fractions(self, doy: float) -> tuple[float, float, float]:
        """(green, dry, flower) cover on day ``doy``; bare background is the rest."""
        rise = 1.0 / (1.0 + np.exp(-(doy - self.start_doy) / self.rise_days))
        fall = 1.0 / (1.0 + np.exp(-(doy - self.end_doy) / self.fall_days))
        seasonal = self.winter_green + (self.peak_green - self.winter_green) * rise
        green = seasonal * (1.0 - fall)
        if self.cut_every_days and doy > self.start_doy + self.cut_every_days:
            # Each cut leaves ~25 % cover, which regrows over the next interval.
            since_cut = (doy - self.start_doy) % self.cut_every_days
            green = min(green, 0.25 + (self.peak_green - 0.25) * since_cut / self.cut_every_days)
        dry = seasonal * fall if self.harvest_doy is not None else 0.0
        if self.harvest_doy is not None and doy >= self.harvest_doy:
            green, dry = 0.0, 0.15  # stubble
        flower = 0.0
        if self.flowering and self.flowering[0] <= doy <= self.flowering[1]:
            flower = self.flowering[2] * green
            green -= flower
        return float(green), float(dry), float(flower)


PHENOLOGY: dict[str, Phenology] = {
    "winter_wheat": Phenology(90, 178, winter_green=0.3, peak_green=0.92, harvest_doy=205),
    "winter_barley": Phenology(80, 162, winter_green=0.3, peak_green=0.88, harvest_doy=188),
    "rapeseed": Phenology(75, 168, winter_green=0.45, peak_green=0.9, harvest_doy=195, flowering=(100, 130, 0.55)),
    "maize": Phenology(165, 262, rise_days=9, peak_green=0.95, harvest_doy=285),
    "sunflower": Phenology(150, 225, peak_green=0.85, harvest_doy=255, flowering=(190, 212, 0.35)),
    "soybean": Phenology(170, 250, rise_days=8, peak_green=0.93, harvest_doy=272),
    "sugar_beet": Phenology(140, 300, rise_days=12, fall_days=15, peak_green=0.95, harvest_doy=295),
    "potato": Phenology(150, 218, rise_days=7, peak_green=0.9, harvest_doy=236),
    "alfalfa": Phenology(95, 290, winter_green=0.4, peak_green=0.9, cut_every_days=38),
    "grassland": Phenology(85, 300, winter_green=0.55, peak_green=0.85, cut_every_days=70, senescent=tuple(DRY_CANOPY)),
    "forest": Phenology(
        115,
        290,
        rise_days=7,
        fall_days=10,
        winter_green=0.1,
        peak_green=0.95,
        canopy=tuple(FOREST_CANOPY),
        background=tuple(LEAF_LITTER),
    ),
    "water": Phenology(0, 366, peak_green=0.0, background=tuple(WATER)),
    "built_up": Phenology(100, 280, winter_green=0.05, peak_green=0.15, background=tuple(IMPERVIOUS)),
}
# Unlabelled strips between parcels (tracks, hedges, verges): a thin, mown sward.
MARGIN = Phenology(90, 290, winter_green=0.35, peak_green=0.55, background=tuple(LOAM_SOIL))


def endmembers(phenology: Phenology, soil_brightness: float = 1.0) -> npt.NDArray[np.float64]:
    """The (4, band) endmember matrix: green canopy, dry canopy, flowers, background."""
    return np.stack(
        [
            np.asarray(phenology.canopy),
            np.asarray(phenology.senescent),
            FLOWERS,
            np.asarray(phenology.background) * soil_brightness,
        ]
    )

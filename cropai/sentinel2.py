"""Sentinel-2 Level-2A facts Crop AI relies on: band names, wavelengths, the
reflectance scale and the scene classification (SCL) codes.

Source: ESA Sentinel-2 User Handbook and the L2A Product Format Specification.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

# The 10 bands at 10 m and 20 m used for crop typing (60 m atmospheric bands are left out),
# in the order scenes are stored and models are fed.
BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
CENTRAL_WAVELENGTH_NM: dict[str, float] = {
    "B02": 492.4,
    "B03": 559.8,
    "B04": 664.6,
    "B05": 704.1,
    "B06": 740.5,
    "B07": 782.8,
    "B08": 832.8,
    "B8A": 864.7,
    "B11": 1613.7,
    "B12": 2202.4,
}
SCL_BAND = "SCL"
# Surface reflectance is stored as uint16 = reflectance x 10000; 0 marks no data.
REFLECTANCE_SCALE = 10_000
NODATA = 0
RESOLUTION_M = 10.0


class SCL(IntEnum):
    """Scene classification codes of the L2A SCL layer."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA = 2
    CLOUD_SHADOW = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW = 11


# Observations with these codes are not a clear view of the ground.
UNUSABLE_SCL: frozenset[int] = frozenset(
    {
        SCL.NO_DATA,
        SCL.SATURATED_OR_DEFECTIVE,
        SCL.CLOUD_SHADOW,
        SCL.CLOUD_MEDIUM_PROBABILITY,
        SCL.CLOUD_HIGH_PROBABILITY,
        SCL.THIN_CIRRUS,
        SCL.SNOW,
    }
)
CLOUD_SCL: tuple[int, ...] = (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY, SCL.THIN_CIRRUS)


def cloud_fraction(scl: npt.NDArray[np.integer]) -> float:
    """Share of valid pixels (SCL != 0) classified cloud (medium or high probability) or thin cirrus;
    0 when no pixel is valid. This is how the L2A metadata's CLOUDY_PIXEL_PERCENTAGE is meant."""
    valid = scl != SCL.NO_DATA
    if not valid.any():
        return 0.0
    return float(np.isin(scl[valid], CLOUD_SCL).mean())

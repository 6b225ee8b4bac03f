"""Target grids: the UTM zone of an area, snapped to whole pixels so that every
run over the same area produces exactly the same pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from cropai.errors import InvalidInput

BBox = tuple[float, float, float, float]  # (minx, miny, maxx, maxy)
# UTM is defined from 80 degrees south to 84 degrees north.
UTM_LATITUDE_RANGE = (-80.0, 84.0)


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: ``crs``, pixel size ``resolution_m`` and the pixel
    origin (upper-left corner) ``origin_x_m``, ``origin_y_m``; ``width`` x ``height`` pixels."""

    crs: str  # e.g. "EPSG:32631"
    resolution_m: float
    origin_x_m: float
    origin_y_m: float
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        return Affine(self.resolution_m, 0.0, self.origin_x_m, 0.0, -self.resolution_m, self.origin_y_m)

    @property
    def bounds(self) -> BBox:
        """(minx, miny, maxx, maxy) in the grid's CRS, metres."""
        return (
            self.origin_x_m,
            self.origin_y_m - self.height * self.resolution_m,
            self.origin_x_m + self.width * self.resolution_m,
            self.origin_y_m,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def pixel_centres(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(x, y): the coordinates of the centres of the grid's columns and rows, in its CRS."""
        x = self.origin_x_m + self.resolution_m * (np.arange(self.width, dtype=np.float64) + 0.5)
        y = self.origin_y_m - self.resolution_m * (np.arange(self.height, dtype=np.float64) + 0.5)
        return x.astype(np.float64), y.astype(np.float64)

    @property
    def pixel_area_ha(self) -> float:
        return self.resolution_m**2 / 10_000


def validate_bbox_wgs84(bbox: BBox) -> BBox:
    """Check a lon/lat box (degrees) is well formed and inside the UTM latitudes."""
    minx, miny, maxx, maxy = bbox
    if not all(math.isfinite(v) for v in bbox):
        raise InvalidInput(f"bbox {bbox} has a non-finite value")
    if not (-180 <= minx < maxx <= 180):
        raise InvalidInput(f"bbox {bbox}: expected -180 <= minx < maxx <= 180 (longitudes)")
    low, high = UTM_LATITUDE_RANGE
    if not (low <= miny < maxy <= high):
        raise InvalidInput(f"bbox {bbox}: expected {low} <= miny < maxy <= {high} (UTM latitudes)")
    return bbox


def utm_crs_for(lon: float, lat: float) -> str:
    """The WGS 84 / UTM zone CRS containing a point, e.g. ``EPSG:32631`` (north) or ``EPSG:32731``."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def grid_for_bbox(bbox_wgs84: BBox, resolution_m: float, crs: str | None = None) -> Grid:
    """The smallest grid in ``crs`` (default: the bbox centre's UTM zone) covering the box,
    with edges on multiples of ``resolution_m`` so that overlapping requests share pixels."""
    validate_bbox_wgs84(bbox_wgs84)
    if crs is None:
        minx, miny, maxx, maxy = bbox_wgs84
        crs = utm_crs_for((minx + maxx) / 2, (miny + maxy) / 2)
    left, bottom, right, top = transform_bounds(CRS.from_epsg(4326), CRS.from_string(crs), *bbox_wgs84, densify_pts=21)
    origin_x = math.floor(left / resolution_m) * resolution_m
    origin_y = math.ceil(top / resolution_m) * resolution_m
    width = math.ceil((right - origin_x) / resolution_m)
    height = math.ceil((origin_y - bottom) / resolution_m)
    return Grid(crs, resolution_m, origin_x, origin_y, width, height)

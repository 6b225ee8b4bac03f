"""The real labelled Flanders season as a user brings it: declared parcels with their national
crop codes in a GeoPackage (in the Belgian Lambert 72 CRS, as Flemish LPIS files are), and
a legend CSV that maps the codes to classes (both barleys to one class)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio  # type: ignore[import-untyped]
import shapely
from pyproj import Transformer

FLANDERS = "worldcereal-flanders-2019"
LAMBERT_72 = "EPSG:31370"
# The WorldCereal crop-type codes of the 2019 Flemish declarations, as a user maps them.
FLANDERS_LEGEND = (
    ("1110", "winter_wheat", "#e6c229"),
    ("1200", "maize", "#f17105"),
    ("1500", "barley", "#c9a66b"),
    ("1510", "barley", "#c9a66b"),
    ("5100", "potato", "#8e5572"),
    ("8100", "sugar_beet", "#1a8fe3"),
    ("9120", "grassland", "#a7e07a"),
)
# A winter cereal season: sowing in October to the harvest of maize and beet in September.
FLANDERS_SEASON = ("2018-10-01", "2019-09-30")


def write_declared_parcels(parcels_geojson: Path, path: Path, crs: str = LAMBERT_72) -> Path:
    """The season's parcels (GeoJSON, EPSG:4326) as a GeoPackage in ``crs`` with the columns
    ``crop_code`` (WorldCereal code) and ``parcel_id``."""
    features = json.loads(parcels_geojson.read_text())["features"]
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    geometries = [shapely.transform(shapely.geometry.shape(f["geometry"]), _xy(to_crs)) for f in features]
    pyogrio.raw.write(
        str(path),
        shapely.to_wkb(np.array(geometries, dtype=object)),
        [
            np.array([f["properties"]["wc_code"] for f in features], dtype=np.int64),
            np.array([f["properties"]["parcel_id"] for f in features], dtype=object),
        ],
        ["crop_code", "parcel_id"],
        geometry_type="Polygon",
        crs=crs,
    )
    return path


def write_legend(path: Path, rows: tuple[tuple[str, str, str], ...] = FLANDERS_LEGEND) -> Path:
    path.write_text("code,class,colour\n" + "".join(f"{code},{name},{colour}\n" for code, name, colour in rows))
    return path


def _xy(transformer: Transformer) -> Callable[[np.ndarray], np.ndarray]:
    def apply(points: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(points[:, 0], points[:, 1])
        return np.column_stack([x, y])

    return apply

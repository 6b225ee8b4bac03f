"""A stratified random sample of a crop map for labelling: the reference data of an accuracy
and area assessment (:mod:`cropai.accuracy`).

The map's classes are the strata. The total size follows from a target standard error of
overall accuracy and the user's accuracy expected of each class (Olofsson et al. 2014,
section 5.1); each class gets at least a minimum of points and the rest follows area.
Points are pixel centres, drawn without replacement with a seed, so a design is repeatable;
they leave as GeoJSON (EPSG:4326) and CSV for labelling in the viewer, a desktop GIS or the
field.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from affine import Affine

from cropai.accuracy import allocate, sample_size
from cropai.errors import InvalidInput
from cropai.legend import Legend
from cropai.storage import ObjectStore

DEFAULT_USERS_ACCURACY = 0.8
DEFAULT_TARGET_SE = 0.01
DEFAULT_MINIMUM = 50


@dataclass(frozen=True)
class SamplePoint:
    point_id: int
    map_class_id: int
    map_class: str
    lon: float
    lat: float
    row: int  # pixel of the map
    col: int


@dataclass(frozen=True)
class SampleDesign:
    """Points to label and how they were chosen: per stratum (map class) its mapped pixels
    and points."""

    target_overall_se: float
    expected_users_accuracy: dict[str, float]
    minimum_per_class: int
    mapped_pixels: dict[str, int]
    points_per_class: dict[str, int]
    points: tuple[SamplePoint, ...]
    seed: int

    def as_geojson(self) -> dict[str, Any]:
        """A FeatureCollection of points (EPSG:4326) with an empty ``reference_class`` to fill in."""
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
                    "properties": {
                        "point_id": p.point_id,
                        "map_class": p.map_class,
                        "map_class_id": p.map_class_id,
                        "reference_class": None,
                    },
                }
                for p in self.points
            ],
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["point_id", "lon", "lat", "map_class", "map_class_id", "reference_class"])
        for p in self.points:
            writer.writerow([p.point_id, f"{p.lon:.7f}", f"{p.lat:.7f}", p.map_class, p.map_class_id, ""])
        return out.getvalue()


def design_sample(
    labels: npt.NDArray[np.integer],
    transform: Affine,
    crs: str,
    legend: Legend,
    target_overall_se: float = DEFAULT_TARGET_SE,
    expected_users_accuracy: Mapping[str, float] | None = None,
    minimum_per_class: int = DEFAULT_MINIMUM,
    seed: int = 0,
) -> SampleDesign:
    """Draw the sample from a (y, x) class-id map on ``transform`` in ``crs`` (0 = no data)."""
    names = {c.id: c.name for c in legend.classes}
    counts = np.bincount(labels.ravel(), minlength=256)
    strata = [class_id for class_id in sorted(names) if counts[class_id] > 0]
    if not strata:
        raise InvalidInput("the map has no mapped pixel: nothing to sample")
    expected = {names[k]: (expected_users_accuracy or {}).get(names[k], DEFAULT_USERS_ACCURACY) for k in strata}
    mapped = [int(counts[k]) for k in strata]
    total = max(sample_size(mapped, list(expected.values()), target_overall_se), minimum_per_class * len(strata))
    per_stratum = allocate(total, mapped, minimum_per_class)
    too_small = [
        f"{names[k]} ({counts[k]} px)" for k, size in zip(strata, per_stratum, strict=True) if counts[k] < size
    ]
    if too_small:
        raise InvalidInput(
            f"map class(es) {', '.join(too_small)} have fewer pixels than the {minimum_per_class} points a stratum "
            "needs: lower the minimum per class, or assess a map in which every class covers more ground"
        )
    rng = np.random.default_rng(seed)
    rows: list[npt.NDArray[np.intp]] = []
    cols: list[npt.NDArray[np.intp]] = []
    ids: list[int] = []
    for class_id, size in zip(strata, per_stratum, strict=True):
        r, c = np.nonzero(labels == class_id)
        chosen = np.sort(rng.choice(len(r), size=size, replace=False))
        rows.append(r[chosen])
        cols.append(c[chosen])
        ids += [class_id] * size
    from rasterio.warp import transform as transform_points  # GDAL loads when a design is drawn, not with the API

    row, col = np.concatenate(rows), np.concatenate(cols)
    xs = transform.c + (col + 0.5) * transform.a + (row + 0.5) * transform.b  # pixel centres in the map's CRS
    ys = transform.f + (col + 0.5) * transform.d + (row + 0.5) * transform.e
    lons, lats = transform_points(crs, "EPSG:4326", xs.tolist(), ys.tolist())
    points = tuple(
        SamplePoint(index, class_id, names[class_id], float(lon), float(lat), int(r), int(c))
        for index, (class_id, lon, lat, r, c) in enumerate(zip(ids, lons, lats, row, col, strict=True), start=1)
    )
    return SampleDesign(
        target_overall_se,
        expected,
        minimum_per_class,
        {names[k]: m for k, m in zip(strata, mapped, strict=True)},
        {names[k]: s for k, s in zip(strata, per_stratum, strict=True)},
        points,
        seed,
    )


def design_for_map(store: ObjectStore, map_key: str, legend: Legend, **options: Any) -> SampleDesign:
    """The sample design of a stored crop map (its class band), in the map's legend."""
    import rasterio

    with store.gdal_env(), rasterio.open(store.gdal_path(map_key)) as src:
        labels = src.read(1)
        transform, crs = src.transform, src.crs.to_string()
    return design_sample(labels, transform, crs, legend, **options)

"""Comparing two crop maps: are they the same map, and if not, where and by how much they differ.

Two analyses on the same inputs (scene versions, model version, options) must give the same
map; a rerun is checked against its original with this. The maps are the analyses' COGs
(band 1: class ids, 0 = no data; band 2: confidence x 255) and the per-field predictions.

rasterio is imported when maps are compared, not with this module: the API stays small until then.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from cropai.legend import Legend
from cropai.storage import ObjectStore

if TYPE_CHECKING:
    from rasterio.io import DatasetReader
    from rasterio.windows import Window

# Rows read at a time: a map is compared in strips, so a large AOI never sits whole in memory.
STRIP_ROWS = 1024
CLASS_VALUES = 256  # class ids are uint8 pixel values
CLASS_BAND, CONFIDENCE_BAND = 1, 2  # rasterio's 1-based band indexes (cropai.cropmap.write_map)


@dataclass(frozen=True)
class ClassAreaChange:
    """One class' area (hectares) in map a and in map b."""

    class_id: int
    class_name: str
    area_ha_a: float
    area_ha_b: float

    @property
    def difference_ha(self) -> float:
        """b minus a: positive where the class grew."""
        return round(self.area_ha_b - self.area_ha_a, 4)


@dataclass(frozen=True)
class FieldChange:
    """A field whose predicted class differs; None where one analysis did not predict it."""

    field_id: int
    class_a: str | None
    class_b: str | None


@dataclass(frozen=True)
class Comparison:
    """What differs between map a and map b. ``pixels_differing`` counts pixels whose class
    differs; None when the maps are on different grids (their pixels are not the same places)."""

    identical: bool
    reason: str | None  # why not identical, in sentences; None when identical
    pixels_differing: int | None
    classes: tuple[ClassAreaChange, ...]
    fields_changed: tuple[FieldChange, ...]


@dataclass(frozen=True)
class _MapGrid:
    crs: str
    transform: tuple[float, ...]
    width: int
    height: int

    @property
    def pixel_area_ha(self) -> float:
        return abs(self.transform[0] * self.transform[4]) / 10_000

    def describe(self) -> str:
        return f"{self.width} x {self.height} px in {self.crs} at {self.transform[:6]}"


@dataclass
class _Counts:
    """Class pixel counts of a and b, and the pixels where they differ (same grid only)."""

    a: npt.NDArray[np.int64]
    b: npt.NDArray[np.int64]
    class_differs: int | None = None
    confidence_differs: int | None = None


def compare_maps(
    store: ObjectStore,
    map_key_a: str,
    map_key_b: str,
    legend: Legend,
    field_predictions_a: Mapping[int, int],
    field_predictions_b: Mapping[int, int],
) -> Comparison:
    """Compare the crop-map COGs at two store keys, and their per-field predictions
    (field id -> class id), with class names from ``legend``.

    Identical means: the same grid (CRS, transform, size), every class pixel and every
    confidence pixel equal, and every field predicted the same class."""
    import rasterio

    path_a, path_b = store.gdal_path(map_key_a), store.gdal_path(map_key_b)
    with store.gdal_env(), rasterio.open(path_a) as a, rasterio.open(path_b) as b:
        grid_a, grid_b = _grid_of(a), _grid_of(b)
        same_grid = grid_a == grid_b
        counts = _paired_counts(a, b) if same_grid else _Counts(_class_counts(a), _class_counts(b))
    classes = class_area_changes(counts.a, counts.b, grid_a.pixel_area_ha, grid_b.pixel_area_ha, legend)
    fields = field_changes(field_predictions_a, field_predictions_b, legend)
    reasons = []
    if not same_grid:
        reasons.append(f"the maps are on different grids: a is {grid_a.describe()}, b is {grid_b.describe()}")
    if counts.class_differs:
        reasons.append(f"{counts.class_differs} pixel(s) have a different class")
    if counts.confidence_differs:
        reasons.append(f"{counts.confidence_differs} pixel(s) have a different confidence")
    if fields:
        reasons.append(f"{len(fields)} field(s) are predicted a different class")
    return Comparison(
        identical=not reasons,
        reason="; ".join(reasons) or None,
        pixels_differing=counts.class_differs,
        classes=classes,
        fields_changed=fields,
    )


def class_area_changes(
    counts_a: npt.NDArray[np.int64],
    counts_b: npt.NDArray[np.int64],
    pixel_area_ha_a: float,
    pixel_area_ha_b: float,
    legend: Legend,
) -> tuple[ClassAreaChange, ...]:
    """Area per class (pixel counts indexed by class id, 0 = no data left out) of both maps:
    every class of the legend, and any other id either map holds."""
    names = {c.id: c.name for c in legend.classes}
    present = {int(i) for i in np.flatnonzero(counts_a + counts_b) if i > 0}
    return tuple(
        ClassAreaChange(
            class_id,
            names.get(class_id, f"class {class_id}"),
            round(float(counts_a[class_id]) * pixel_area_ha_a, 4),
            round(float(counts_b[class_id]) * pixel_area_ha_b, 4),
        )
        for class_id in sorted(set(names) | present)
    )


def field_changes(a: Mapping[int, int], b: Mapping[int, int], legend: Legend) -> tuple[FieldChange, ...]:
    """The fields whose predicted class (field id -> class id) differs, by field id."""
    names = {c.id: c.name for c in legend.classes}

    def name(class_id: int | None) -> str | None:
        return None if class_id is None else names.get(class_id, f"class {class_id}")

    return tuple(
        FieldChange(field_id, name(a.get(field_id)), name(b.get(field_id)))
        for field_id in sorted(set(a) | set(b))
        if a.get(field_id) != b.get(field_id)
    )


def _grid_of(src: DatasetReader) -> _MapGrid:
    return _MapGrid(str(src.crs), tuple(src.transform)[:6], src.width, src.height)


def _strips(width: int, height: int) -> Iterator[Window]:
    from rasterio.windows import Window

    for row in range(0, height, STRIP_ROWS):
        yield Window(0, row, width, min(STRIP_ROWS, height - row))


def _bincount(labels: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    return np.bincount(labels.ravel(), minlength=CLASS_VALUES).astype(np.int64)


def _class_counts(src: DatasetReader) -> npt.NDArray[np.int64]:
    counts = np.zeros(CLASS_VALUES, np.int64)
    for window in _strips(src.width, src.height):
        counts += _bincount(src.read(CLASS_BAND, window=window))
    return counts


def _paired_counts(a: DatasetReader, b: DatasetReader) -> _Counts:
    """Class counts of two maps on one grid, and where their class and confidence bands differ."""
    counts = _Counts(np.zeros(CLASS_VALUES, np.int64), np.zeros(CLASS_VALUES, np.int64), 0, 0)
    for window in _strips(a.width, a.height):
        class_a, confidence_a = a.read((CLASS_BAND, CONFIDENCE_BAND), window=window)
        class_b, confidence_b = b.read((CLASS_BAND, CONFIDENCE_BAND), window=window)
        counts.a += _bincount(class_a)
        counts.b += _bincount(class_b)
        counts.class_differs = (counts.class_differs or 0) + int((class_a != class_b).sum())
        counts.confidence_differs = (counts.confidence_differs or 0) + int((confidence_a != confidence_b).sum())
    return counts

"""Training data: a labelled season over one area, from the catalogue or from label rasters.

The main road is :func:`cropai.training_season.labelled_season` (parcels plus the
catalogue's scenes, read as an analysis reads them), turned into
:class:`TrainingData` by :meth:`TrainingData.of_season`. Label rasters on a folder
of scenes' grid (class ids, 0 = unlabelled) remain for the synthetic training set,
which comes with them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.features import rasterize, shapes
from rasterio.warp import transform_geom

from cropai.composite import composite, fill_gaps
from cropai.errors import InvalidInput
from cropai.raster import BandSource, acquisition_time_from, plan_layout
from cropai.season import Season
from cropai.training_season import LabelledSeason, band_means
from models.contract import DEFAULT_SEASON

if TYPE_CHECKING:
    from cropai.synth import SynthSpec


@dataclass
class TrainingData:
    """A season over one area: ``cube`` (time, band, y, x) reflectance without gaps,
    ``labels`` (y, x) class ids with 0 = unlabelled, ``fields`` (y, x) field ids with 0 = none,
    ``clear`` (time, y, x) where a bin saw the pixel clear before its gap was filled (None: everywhere)."""

    cube: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    fields: npt.NDArray[np.int32]
    year: int
    season: Season = DEFAULT_SEASON
    bbox_wgs84: tuple[float, float, float, float] | None = None  # the training region
    input_scenes: list[dict[str, Any]] = field(default_factory=list)  # scene versions read, when catalogued
    clear: npt.NDArray[np.bool_] | None = None

    @classmethod
    def of_season(cls, labelled: LabelledSeason, season: Season) -> TrainingData:
        """A catalogue season's composites with their gaps filled as an analysis fills them."""
        return cls(
            fill_gaps(labelled.cube, band_means(labelled)),
            labelled.labels.astype(np.int64),
            labelled.fields,
            labelled.year,
            season,
            labelled.bbox_wgs84,
            labelled.input_scenes,
            clear_views(labelled.cube),
        )


# The default model's training set: a 10 km x 10 km farming area in the Beauce, one season.
DEFAULT_TRAINING_BBOX = (1.55, 48.15, 1.69, 48.24)
DEFAULT_TRAINING_SEASON = ("2025-03-01", "2025-10-31")


def default_training_spec(seed: int) -> SynthSpec:
    """The synthetic scene set the default model is trained on (``cropai train`` without data)."""
    from datetime import date

    from cropai.synth import SynthSpec

    start, end = (date.fromisoformat(d) for d in DEFAULT_TRAINING_SEASON)
    return SynthSpec(DEFAULT_TRAINING_BBOX, start, end, seed=seed)


@dataclass(frozen=True)
class _LabelGrid:
    """The label raster's grid, which every scene must share."""

    crs: Any  # a rasterio CRS
    transform: Affine
    shape: tuple[int, int]


@dataclass(frozen=True)
class _TimedScene:
    """A scene on the label grid: when it was acquired, which of its bands to read and their radiometry."""

    acquired_at: datetime
    path: Path
    sources: tuple[BandSource, ...]

    def loader(self) -> Callable[[], npt.NDArray[np.uint16]]:
        def load() -> npt.NDArray[np.uint16]:
            with rasterio.open(self.path) as src:
                stack = src.read([s.band_index for s in self.sources])
            return np.stack([s.radiometry.to_canonical(plane) for plane, s in zip(stack, self.sources, strict=True)])

        return load


def load_training_data(
    scenes_dir: Path,
    labels_path: Path,
    season: Season = DEFAULT_SEASON,
    parcels_path: Path | None = None,
    band_mapping: Sequence[str | None] | None = None,
) -> TrainingData:
    """Composite the scenes per month and line them up with labels and fields."""
    scene_paths = sorted(p for p in scenes_dir.glob("*.tif*") if not p.name.startswith("."))
    if not scene_paths:
        raise InvalidInput(f"no scenes (*.tif) in {scenes_dir}")
    with rasterio.open(labels_path) as src:
        labels = src.read(1)
        grid = _LabelGrid(src.crs, src.transform, src.shape)
    scenes = [_scene_on_grid(path, grid, labels_path.name, band_mapping) for path in scene_paths]
    year = Counter(scene.acquired_at.year for scene in scenes).most_common(1)[0][0]
    cube = composite([(scene.acquired_at, scene.loader()) for scene in scenes], season.time_bins(year)).cube
    means = np.nanmean(cube, axis=(0, 2, 3))
    clear = clear_views(cube)
    cube = fill_gaps(cube, np.nan_to_num(means).tolist())
    if parcels_path is not None:
        fields = _rasterize_parcels(parcels_path, grid)
    else:
        fields = _connected_fields(labels, grid.transform)
    return TrainingData(cube, labels.astype(np.int64), fields, year, season, clear=clear)


def clear_views(cube: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """(time, y, x): where a ``(time, band, y, x)`` composite saw the pixel clear in every band."""
    clear: npt.NDArray[np.bool_] = ~np.isnan(cube).any(axis=1)
    return clear


def _scene_on_grid(
    path: Path, grid: _LabelGrid, labels_name: str, band_mapping: Sequence[str | None] | None
) -> _TimedScene:
    """Recognise a scene's bands and acquisition time; refuse it off the label raster's grid."""
    layout = plan_layout([(str(path), None)], band_mapping)
    moment = acquisition_time_from(layout.tags, path.name)
    if moment is None:
        raise InvalidInput(f"{path.name}: no acquisition time in its tags or name")
    if layout.transform != grid.transform or (layout.height, layout.width) != grid.shape:
        raise InvalidInput(f"{path.name} is not on the label raster's grid ({labels_name})")
    return _TimedScene(moment, path, layout.sources)


def _rasterize_parcels(path: Path, grid: _LabelGrid) -> npt.NDArray[np.int32]:
    collection = json.loads(path.read_text())
    geometries = (
        (transform_geom("EPSG:4326", grid.crs, feature["geometry"]), index)
        for index, feature in enumerate(collection["features"], start=1)
    )
    fields: npt.NDArray[np.int32] = rasterize(
        geometries, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32"
    )
    return fields


def _connected_fields(labels: npt.NDArray[np.integer], transform: Affine) -> npt.NDArray[np.int32]:
    """Without parcels, each connected patch of one class counts as a field."""
    patches = [
        (geometry, index)
        for index, (geometry, value) in enumerate(
            shapes(labels.astype(np.int32), mask=labels > 0, transform=transform), start=1
        )
        if value
    ]
    fields: npt.NDArray[np.int32] = rasterize(
        patches, out_shape=labels.shape, transform=transform, fill=0, dtype="int32"
    )
    return fields

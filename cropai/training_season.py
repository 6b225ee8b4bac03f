"""Training data from the catalogue: labelled parcels plus the ingested scenes that cover them.

A model learns from exactly what an analysis will give it: the parcels' area is put
on the analysis grid (the area's UTM zone at 10 m), the catalogue's scenes within
the season are read and composited by :func:`cropai.analysis.season_composite`,
and the parcels are burnt onto that grid. Pixels never seen clear in the season
carry no evidence and are left unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pydantic import BaseModel, Field, model_validator
from rasterio.windows import Window
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis import CandidateScene, candidate_scenes, scene_refs, season_composite, usable_scenes
from cropai.composite import TimeBin
from cropai.errors import InvalidInput
from cropai.fields import labelled_fields
from cropai.grid import Grid, grid_for_bbox
from cropai.legend import Legend
from cropai.parcels import (
    ClassifiedParcels,
    LabelledParcels,
    check_parcels_cover,
    classify_parcels,
    parcels_bounds_wgs84,
    rasterise_parcels,
    read_parcels,
)
from cropai.season import BinLength, Season
from cropai.sentinel2 import RESOLUTION_M
from cropai.storage import ObjectStore


@dataclass
class LabelledSeason:
    """A season over one area: ``cube`` (time, band, y, x) reflectance 0..1 with NaN where a
    bin never saw a pixel clear, ``labels`` (y, x) class ids (0 = unlabelled) and ``fields``
    (y, x) parcel ids (0 = none), on ``grid``."""

    cube: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]
    fields: npt.NDArray[np.int32]
    grid: Grid
    bins: tuple[TimeBin, ...]
    input_scenes: list[dict[str, Any]]  # the scene versions read (SceneRef.as_input)
    bbox_wgs84: tuple[float, float, float, float]  # the parcels' (minx, miny, maxx, maxy)

    @property
    def year(self) -> int:
        return self.bins[0].start.year


def labelled_season(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    parcels: ClassifiedParcels,
    season: Season,
    window: tuple[date, date],
    inner_buffer_m: float = 0.0,
    max_cloud_fraction: float | None = None,
) -> LabelledSeason:
    """The parcels' area as a model sees it in the season's bins within ``window``.

    Errors name what is missing: no scene over the parcels in the window, a bin in which no
    labelled pixel was ever seen clear, parcels that cover no pixel of the grid.
    """
    bins, scenes = season_scenes(sessions, parcels, season, window, max_cloud_fraction)
    bounds = parcels_bounds_wgs84(parcels)
    grid = grid_for_bbox(bounds, RESOLUTION_M)
    refs = scene_refs(grid, scenes)
    made = season_composite(store, refs, bins, grid, Window(0, 0, grid.width, grid.height))
    if made is None:
        raise InvalidInput(
            f"no scene in the catalogue covers the parcels (bbox {_rounded(bounds)}) "
            f"between {window[0]} and {window[1]}: ingest scenes that cover them"
        )
    cube = made.cube
    labels, fields = rasterise_parcels(parcels, grid.crs, grid.transform, grid.shape, inner_buffer_m)
    check_parcels_cover(labels, parcels)
    seen = ~np.isnan(cube).all(axis=(0, 1))
    if not (seen & (labels > 0)).any():
        raise InvalidInput(
            f"the parcels (bbox {_rounded(bounds)}) are outside every scene seen clear between {window[0]} and "
            f"{window[1]}: ingest scenes that cover them"
        )
    labels[~seen], fields[~seen] = 0, 0
    check_every_bin_seen(cube, labels > 0, bins)
    return LabelledSeason(cube, labels, fields, grid, bins, [ref.as_input() for ref in refs], bounds)


def season_scenes(
    sessions: sessionmaker[Session],
    parcels: ClassifiedParcels,
    season: Season,
    window: tuple[date, date],
    max_cloud_fraction: float | None = None,
) -> tuple[tuple[TimeBin, ...], list[CandidateScene]]:
    """The season's bins within ``window`` and the catalogued scenes that meet the parcels' box
    in them; ``NoUsableScenes`` names the box and the window when there is none, and a bin
    without any such scene is an error naming each empty bin."""
    bins = season.bins_in(*window)
    bounds = parcels_bounds_wgs84(parcels)
    area = shapely.geometry.mapping(shapely.box(*bounds))
    scenes = usable_scenes(area, bins, candidate_scenes(sessions, bounds, max_cloud_fraction), window)
    empty = [b for b in bins if not any(b.contains(scene.acquired_at) for scene in scenes)]
    if empty:
        named = ", ".join(f"{b.start} to {b.end}" for b in empty)
        raise InvalidInput(
            f"no scene of the parcels in {len(empty)} time bin(s) of the season ({named}): ingest scenes "
            "in them, or choose a season whose bins the scenes cover"
        )
    return bins, scenes


def check_every_bin_seen(
    cube: npt.NDArray[np.float32], labelled: npt.NDArray[np.bool_], bins: tuple[TimeBin, ...]
) -> None:
    """A bin in which no labelled pixel was seen clear would teach the model its gap filling."""
    blind = [b for index, b in enumerate(bins) if np.isnan(cube[index][:, labelled]).all()]
    if blind:
        named = ", ".join(f"{b.start} to {b.end}" for b in blind)
        raise InvalidInput(
            f"no clear observation of the parcels in {len(blind)} time bin(s) of the season ({named}): ingest "
            f"clear scenes in them, or choose a season whose bins the scenes cover"
        )


def band_means(season: LabelledSeason) -> list[float]:
    """Mean reflectance per band over the clear observations: what a never-seen pixel gets."""
    means = np.nanmean(season.cube, axis=(0, 2, 3))
    return [float(v) for v in np.nan_to_num(means)]


def _rounded(bounds: tuple[float, float, float, float]) -> tuple[float, ...]:
    return tuple(round(v, 5) for v in bounds)


class ParcelTraining(BaseModel):
    """What to train on: labelled parcels, their legend and the season, as the CLI, the API
    and the ``train`` flow's form take it.

    The parcels are a file (``fields_path``) or an owner's fields in the catalogue
    (``owner_id``, optionally only ``field_ids``); the legend a CSV file (``legend_path``), rows
    of one given inline (``legend_records``: ``{"code", "class", "colour"?, "id"?}``, the CSV's
    columns and rules, see :mod:`cropai.legend`), or neither: each label value is a class."""

    fields_path: str | None = None  # GeoPackage, GeoParquet, Shapefile, GeoJSON or FlatGeobuf, any CRS
    owner_id: int | None = None  # or the catalogue's fields of this user
    field_ids: list[int] | None = None  # only these of them; none: all
    label_column: str  # the property holding each parcel's crop code or name
    legend_path: str | None = None  # CSV code -> class (see cropai.legend); none: each value is a class
    legend_records: list[dict[str, Any]] | None = None  # or the CSV's rows inline
    start: date  # the season's first day
    end: date  # its last day: the season is the whole bins from start to end
    bin_length: BinLength = "month"
    inner_buffer_m: float = Field(default=0.0, ge=0.0, le=100.0)  # shrink parcels: edge pixels are mixed
    min_fields: int = Field(default=2, ge=1)  # per class: fewer is an error, or merged into "other"
    merge_rare: bool = False
    max_cloud_fraction: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_source_of_each(self) -> ParcelTraining:
        if (self.fields_path is None) == (self.owner_id is None):
            raise ValueError("give the parcels as one of fields_path (a file) or owner_id (the catalogue's fields)")
        if self.field_ids is not None and self.owner_id is None:
            raise ValueError("field_ids pick catalogue fields: they need owner_id")
        if self.legend_path is not None and self.legend_records is not None:
            raise ValueError("give the legend as one of legend_path and legend_records, not both")
        return self

    @property
    def season(self) -> Season:
        return Season.spanning(self.start, self.end, self.bin_length)

    @property
    def window(self) -> tuple[date, date]:
        return self.start, self.end

    def parcels(self, sessions: sessionmaker[Session]) -> LabelledParcels:
        """The labelled parcels, from the file or the catalogue."""
        if self.fields_path is not None:
            return read_parcels(Path(self.fields_path), self.label_column)
        assert self.owner_id is not None  # the validator's rule
        return labelled_fields(sessions, self.owner_id, self.label_column, self.field_ids)

    def legend(self) -> Legend | None:
        """The legend given, or None: each label value is then a class."""
        if self.legend_path is not None:
            return Legend.from_csv(Path(self.legend_path))
        if self.legend_records is not None:
            return Legend.from_rows(self.legend_records)
        return None

    def classified_parcels(self, sessions: sessionmaker[Session]) -> ClassifiedParcels:
        """The parcels under the legend, rare classes refused or merged (``classify_parcels``)."""
        return classify_parcels(self.parcels(sessions), self.legend(), self.min_fields, self.merge_rare)

    def describe(self) -> str:
        if self.fields_path is not None:
            parcels = f"parcels {self.fields_path}"
        else:
            chosen = f"{len(self.field_ids)} catalogue fields" if self.field_ids is not None else "the catalogue fields"
            parcels = f"{chosen} of user {self.owner_id}"
        legend = self.legend_path or ("given inline" if self.legend_records is not None else "from the values")
        return (
            f"{parcels} (label column {self.label_column!r}, legend {legend}), "
            f"season {self.start} to {self.end} ({self.season.describe()})"
        )


def check_training(sessions: sessionmaker[Session], request: ParcelTraining) -> ClassifiedParcels:
    """Every check of a training request that reads no pixels: the parcels and their label,
    the legend and its classes, the season, and catalogued scenes that meet the parcels within
    it. What the API runs before it starts a training run; InvalidInput names what is wrong."""
    season = request.season
    parcels = request.classified_parcels(sessions)
    season_scenes(sessions, parcels, season, request.window, request.max_cloud_fraction)
    return parcels

"""Analyses and seasons as xarray Datasets, for notebooks.

An analysis' prediction Zarr (``analyses/{id}/pred.zarr``) is laid out as xarray and
rioxarray read it: ``class`` and ``confidence`` (y, x) and ``evidence`` (time, y, x) name
their dimensions, ``x``/``y`` hold the pixel centres in the grid's CRS, ``time`` the first
day of each time bin, and the ``spatial_ref`` coordinate the CRS (WKT) and the GDAL geotransform,
so ``xr.open_zarr(...)`` then ``.rio.crs`` just works. The group's attributes hold the model,
its classes (id, name, colour) and the bins.

    import cropai
    predictions = cropai.open_analysis("6f1c...")   # class, confidence, evidence
    season = cropai.open_season(aoi, date(2025, 4, 1), date(2025, 9, 30))   # what a model sees
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
import zarr
from rasterio.crs import CRS
from rasterio.windows import Window

from cropai import sentinel2
from cropai.analysis import aoi_grid, aoi_mask, candidate_scenes, scene_refs, season_composite, usable_scenes
from cropai.composite import TimeBin, monthly_bins
from cropai.config import Settings
from cropai.db import Analysis
from cropai.errors import InvalidInput, ObjectNotFound
from cropai.grid import Grid
from cropai.legend import Legend
from cropai.services import services
from cropai.zarr_store import ObjectZarrStore

if TYPE_CHECKING:  # xarray loads when a notebook asks for a Dataset, not with the core
    import xarray as xr

SPATIAL_REF = "spatial_ref"
GRID_MAPPING = {"grid_mapping": SPATIAL_REF, "coordinates": SPATIAL_REF}  # CF: how a variable finds its CRS


def georeference(
    root: zarr.Group, grid: Grid, bins: Sequence[TimeBin], legend: Legend, *, analysis_id: str, model: str
) -> None:
    """Write the coordinates, the CRS and the class metadata of a prediction Zarr whose arrays
    name their dimensions (``dimension_names``); what is there already is left as it is."""
    transform = grid.transform
    x, y = grid.pixel_centres()
    if "x" not in root:
        root.create_array("x", data=x, dimension_names=("x",))
    if "y" not in root:
        root.create_array("y", data=y, dimension_names=("y",))
    if "time" not in root:
        first = bins[0].start
        days = root.create_array(
            "time", data=np.array([(b.start - first).days for b in bins], dtype="int64"), dimension_names=("time",)
        )
        days.attrs.update(units=f"days since {first.isoformat()}", calendar="proleptic_gregorian")
    if SPATIAL_REF not in root:
        crs = CRS.from_user_input(grid.crs)
        reference = root.create_array(SPATIAL_REF, shape=(), dtype="int64", fill_value=0, dimension_names=())
        reference.attrs.update(
            crs_wkt=crs.to_wkt(), spatial_ref=crs.to_wkt(), GeoTransform=" ".join(str(v) for v in transform.to_gdal())
        )
    for name in ("class", "confidence", "evidence"):
        root[name].attrs.update(GRID_MAPPING)
    root["class"].attrs.update(
        flag_values=[c.id for c in legend.classes],
        flag_meanings=" ".join(c.name.replace(" ", "_") for c in legend.classes),
        long_name="crop class id (0: no data)",
    )
    root["confidence"].attrs.update(long_name="probability of the class x 255")
    root["evidence"].attrs.update(long_name="clear observations behind the time bin's value (0: gap-filled)")
    root.attrs.update(
        analysis_id=analysis_id,
        model=model,
        classes=json.dumps(legend.as_records()),
        time_bins=[[b.start.isoformat(), b.end.isoformat()] for b in bins],
    )


def open_analysis(analysis_id: str | uuid.UUID, settings: Settings | None = None) -> xr.Dataset:
    """An analysis' predictions, lazily (Dask arrays): ``class``, ``confidence`` and ``evidence``
    with x/y/time coordinates and the CRS (``.rio.crs``): the grid is the AOI's bounding box,
    and pixels outside the AOI are 0, as in ``cropmap.tif``."""
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    prefix = f"analyses/{uuid.UUID(str(analysis_id))}/pred.zarr"
    svc = services(settings)
    with svc.sessions() as session:
        analysis = session.get(Analysis, uuid.UUID(str(analysis_id)))
        if analysis is None:
            raise ObjectNotFound(f"no analysis {analysis_id}")
        aoi = analysis.aoi_geojson
    store = ObjectZarrStore(svc.store, prefix, read_only=True)
    try:
        root = zarr.open_group(store, mode="r")
    except FileNotFoundError:
        raise ObjectNotFound(f"analysis {analysis_id} has no predictions ({prefix}): is it planned and run?") from None
    if "x" not in root:
        raise InvalidInput(
            f"analysis {analysis_id} was mapped before its predictions were georeferenced: rerun it "
            "(POST /analyses/{id}/rerun) or read its cropmap.tif with rioxarray.open_rasterio"
        )
    predictions = xr.open_zarr(store, consolidated=False)
    inside = xr.DataArray(aoi_mask(aoi, aoi_grid(aoi)), dims=("y", "x"))
    masked: xr.Dataset = predictions.where(inside, 0).astype("uint8")  # as cropmap.tif: 0 outside the AOI
    located: xr.Dataset = masked.rio.write_crs(predictions.rio.crs)
    return located


def open_season(
    aoi_geojson: dict[str, Any],
    start: date,
    end: date,
    bins: Sequence[TimeBin] | None = None,
    settings: Settings | None = None,
) -> xr.Dataset:
    """The season of the catalogued scenes over an AOI (GeoJSON, EPSG:4326) as a model sees it,
    before gaps are filled: ``reflectance`` (time, band, y, x), the median of each bin's clear
    observations (NaN where a bin never saw a pixel clear), and ``clear_count`` (time, y, x), on
    the 10 m grid an analysis of the AOI would use. ``bins`` default to the calendar months of the
    window. Reads every scene once; meant for AOIs of a few km² to a few hundred."""
    import rioxarray  # noqa: F401
    import xarray as xr

    if bins is None:
        months = range(start.month, end.month + 1) if start.year == end.year else range(start.month, 13)
        bins = [b for b in monthly_bins(start.year, months) if start <= b.start and b.end <= end] or list(
            monthly_bins(start.year, [start.month])
        )
    svc = services(settings)
    grid = aoi_grid(aoi_geojson)
    candidates = candidate_scenes(svc.sessions, shapely.geometry.shape(aoi_geojson).bounds)
    usable = usable_scenes(aoi_geojson, bins, candidates, (start, end))
    made = season_composite(svc.store, scene_refs(grid, usable), bins, grid, Window(0, 0, grid.width, grid.height))
    if made is None:
        raise ObjectNotFound(f"no catalogued scene covers the AOI between {start} and {end}")
    x, y = grid.pixel_centres()
    coords = {
        "time": np.array([b.start for b in bins], dtype="datetime64[ns]"),
        "band": list(sentinel2.BANDS),
        "y": y,
        "x": x,
    }
    outside = ~aoi_mask(aoi_geojson, grid)
    made.cube[:, :, outside] = np.nan
    made.clear_counts[:, outside] = 0
    season = xr.Dataset(
        {
            "reflectance": (("time", "band", "y", "x"), made.cube),
            "clear_count": (("time", "y", "x"), made.clear_counts),
        },
        coords=coords,
        attrs={"time_bins": [[b.start.isoformat(), b.end.isoformat()] for b in bins]},
    )
    located: xr.Dataset = season.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    return located

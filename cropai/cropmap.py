"""Finishing an analysis: the prediction Zarr becomes a crop-map COG and a PNG
quicklook with a legend, and its statistics per class and per field.

The crop map has two uint8 bands: ``class`` (class ids, 0 = no data, with the
class colour table) and ``confidence`` (probability of the predicted class x 255).
Its evidence is a COG beside it, ``evidence.tif``, with one uint8 band ``clear_bins``:
how many of the season's time bins saw the pixel clear at least once (the tag
``EVIDENCE_BINS`` holds the number of bins). A separate file, because a GeoTIFF of
three or more bands cannot keep the class colour table (GDAL writes one only for one-
or two-sample TIFFs), and tiles and GIS users colour the map with it. Pixels outside
the AOI are 0 in both. Hectares are pixels x 0.01 ha at 10 m.

A value of a bin no clear observation supports was gap-filled: a field whose share of
gap-filled values passes ``max_gap_filled_share`` is marked ``insufficient_evidence``,
and so are the pixels of the class areas, counted apart as ``low_evidence_pixels``.
"""

from __future__ import annotations

import io
import json
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import zarr
from PIL import Image, ImageDraw, ImageFont
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import transform_geom

from cropai.analysis import AnalysisPlan, aoi_mask
from cropai.grid import Grid
from cropai.legend import Legend
from cropai.storage import COG_CONTENT_TYPE, ObjectStore
from cropai.webtiles import tiles_prefix
from cropai.zarr_store import ObjectZarrStore

QUICKLOOK_MAX_PX = 1024
MAP, QUICKLOOK, EVIDENCE = "cropmap.tif", "quicklook.png", "evidence.tif"  # object names under the analysis
STYLE = "cropmap.qml"  # the map's QGIS style: class names and colours, applied by QGIS to cropmap.tif beside it
# GDAL's sidecar beside the map (cropmap.tif.aux.xml): its category names and attribute table
CATEGORIES_SUFFIX = ".aux.xml"


@dataclass(frozen=True)
class ClassArea:
    class_id: int
    class_name: str
    pixel_count: int
    area_ha: float
    low_evidence_pixels: int = 0  # of pixel_count: gap-filled in more than the allowed share of bins

    @property
    def low_evidence_ha(self) -> float:
        return round(self.area_ha * self.low_evidence_pixels / self.pixel_count, 4) if self.pixel_count else 0.0


@dataclass(frozen=True)
class FieldResult:
    field_id: int
    class_id: int
    class_name: str
    share: float  # of the field's mapped pixels that have the majority class
    mean_confidence: float  # 0..1, over the field's mapped pixels
    pixel_count: int
    gap_filled_share: float = 0.0  # 0..1 of (time bin x mapped pixel) values with no clear observation
    insufficient_evidence: bool = False  # gap_filled_share above the allowed share


@dataclass(frozen=True)
class CropMap:
    map_key: str
    quicklook_key: str
    classes: list[ClassArea]
    fields: list[FieldResult]
    valid_pixels: int
    aoi_pixels: int
    evidence_key: str  # the clear_bins COG


@dataclass(frozen=True)
class AnalysisSummary:
    """What one analysis produced: what ``cropai analyze`` prints and the run's artifact shows."""

    analysis_id: uuid.UUID
    model: str
    map: str  # where GDAL opens the crop map: a file path or a /vsis3/ address
    quicklook: str
    map_key: str
    quicklook_key: str
    classes: list[ClassArea]
    fields: int  # fields predicted
    valid_pixels: int
    aoi_pixels: int
    batches: int = 0
    batches_reused: int = 0
    input_scenes: tuple[dict[str, Any], ...] = ()  # the exact scene versions read (SceneRef.as_input)
    warnings: tuple[str, ...] = ()  # what a reader should know before trusting the map
    insufficient_fields: int = 0  # fields predicted mostly from gap-filled values


@dataclass(frozen=True)
class Evidence:
    """How much of a map rests on clear observations: ``clear_bins`` (y, x) of ``bins`` time bins
    saw each pixel clear; a share of gap-filled bin values above ``max_gap_filled_share`` (0..1)
    is too little evidence to trust a prediction."""

    clear_bins: npt.NDArray[np.uint8]
    bins: int
    max_gap_filled_share: float

    def gap_filled_share(self, pixels: npt.NDArray[np.bool_]) -> float:
        """Of the (bin x pixel) values of ``pixels`` (a (y, x) mask), the share that was gap-filled."""
        gaps = self.bins * int(pixels.sum()) - int(self.clear_bins[pixels].sum(dtype=np.int64))
        return round(gaps / (self.bins * int(pixels.sum())), 4)

    def is_insufficient(self, gap_filled_share: float) -> bool:
        return gap_filled_share > self.max_gap_filled_share

    def low_pixels(self) -> npt.NDArray[np.bool_]:
        """(y, x) True where a pixel's own share of gap-filled bins is above the allowed share."""
        gap_filled = (self.bins - self.clear_bins.astype(np.int64)) / self.bins
        return np.asarray(gap_filled > self.max_gap_filled_share)


def finalise(
    plan: AnalysisPlan,
    store: ObjectStore,
    fields: Sequence[tuple[int, dict[str, Any]]] = (),
    *,
    max_gap_filled_share: float,
) -> CropMap:
    """Write ``cropmap.tif`` and ``quicklook.png`` under the analysis prefix and measure them.

    ``fields`` are (field id, GeoJSON geometry in EPSG:4326) of the owner's parcels. A field or
    pixel whose share of gap-filled bin values (0..1) is above ``max_gap_filled_share`` has
    insufficient evidence.
    """
    predictions = ObjectZarrStore(store, plan.zarr_prefix)
    labels, confidence = _read_band(predictions, "class"), _read_band(predictions, "confidence")
    clear_bins = _clear_bins(predictions)
    inside = aoi_mask(plan.request.aoi_geojson, plan.grid)
    labels[~inside], confidence[~inside], clear_bins[~inside] = 0, 0, 0
    evidence = Evidence(clear_bins, len(plan.time_bins), max_gap_filled_share)

    map_key, quicklook_key, evidence_key = (f"{plan.prefix}/{name}" for name in (MAP, QUICKLOOK, EVIDENCE))
    classes = class_areas(labels, plan.grid.pixel_area_ha, plan.legend, evidence.low_pixels())
    with tempfile.TemporaryDirectory(prefix="cropai-map-") as temp:
        path = Path(temp) / MAP
        write_map(
            labels,
            confidence,
            plan.grid,
            path,
            analysis_id=str(plan.analysis_id),
            model=plan.model,
            legend=plan.legend,
        )
        store.put(map_key, path, content_type=COG_CONTENT_TYPE, move=True)
        path = Path(temp) / EVIDENCE
        write_evidence(clear_bins, plan.grid, path, bins=evidence.bins, analysis_id=str(plan.analysis_id))
        store.put(evidence_key, path, content_type=COG_CONTENT_TYPE, move=True)
    for cached in store.list(tiles_prefix(str(plan.analysis_id))):  # web tiles of an earlier run's map
        store.delete(cached.key)
    store.put(quicklook_key, quicklook(labels, classes, plan.legend), content_type="image/png")
    store.put(f"{plan.prefix}/{STYLE}", plan.legend.qgis_style().encode(), content_type="text/xml")
    store.put(f"{map_key}{CATEGORIES_SUFFIX}", plan.legend.gdal_categories().encode(), content_type="text/xml")
    return CropMap(
        map_key,
        quicklook_key,
        classes,
        field_results(labels, confidence, plan, fields, evidence),
        int((labels > 0).sum()),
        int(inside.sum()),
        evidence_key,
    )


def _read_band(predictions: ObjectZarrStore, name: str) -> npt.NDArray[np.uint8]:
    """A (y, x) uint8 array of the prediction Zarr, whole."""
    return np.asarray(zarr.open_array(predictions, path=name, mode="r")[:], dtype=np.uint8)


def _clear_bins(predictions: ObjectZarrStore) -> npt.NDArray[np.uint8]:
    """(y, x): the time bins of the ``evidence`` array with at least one clear observation.
    Read one bin at a time: the whole array is as many times the map's size as there are bins."""
    evidence = zarr.open_array(predictions, path="evidence", mode="r")
    clear_bins = np.zeros(evidence.shape[1:], dtype=np.uint8)
    for index in range(evidence.shape[0]):
        clear_bins += np.asarray(evidence[index]) > 0
    return clear_bins


def write_map(
    labels: np.ndarray,
    confidence: np.ndarray,
    grid: Grid,
    path: Path,
    *,
    analysis_id: str,
    model: str,
    legend: Legend,
) -> None:
    """The crop-map COG: (y, x) uint8 ``labels`` and ``confidence`` on ``grid``, coloured by the model's legend."""
    with rasterio.open(path, "w", **_cog_profile(grid, count=2)) as dst:
        dst.write(labels, 1)
        dst.write(confidence, 2)
        dst.write_colormap(1, legend.colour_table())
        dst.descriptions = ("class", "confidence")
        dst.update_tags(
            ANALYSIS_ID=analysis_id,
            MODEL=model,
            CLASSES=json.dumps({c.id: c.name for c in legend.classes}),
            CONFIDENCE_SCALE="255",
        )
        dst.update_tags(1, RESAMPLING=Resampling.mode.name)


def write_evidence(clear_bins: np.ndarray, grid: Grid, path: Path, *, bins: int, analysis_id: str) -> None:
    """The evidence COG: (y, x) uint8 ``clear_bins``, of ``bins`` time bins those that saw a pixel clear."""
    with rasterio.open(path, "w", **_cog_profile(grid, count=1)) as dst:
        dst.write(clear_bins, 1)
        dst.descriptions = ("clear_bins",)
        dst.update_tags(ANALYSIS_ID=analysis_id, EVIDENCE_BINS=str(bins))


def _cog_profile(grid: Grid, count: int) -> dict[str, Any]:
    """uint8 bands on ``grid``, 0 = no data; overviews by the most common value, as class ids need."""
    return dict(
        driver="COG",
        width=grid.width,
        height=grid.height,
        count=count,
        dtype="uint8",
        nodata=0,
        crs=grid.crs,
        transform=grid.transform,
        compress="DEFLATE",
        blocksize=512,
        overview_resampling="MODE",
    )


def class_areas(
    labels: np.ndarray, pixel_area_ha: float, legend: Legend, low_evidence: npt.NDArray[np.bool_]
) -> list[ClassArea]:
    """Pixels and hectares per class of ``labels`` (y, x), with those of the ``low_evidence`` (y, x)
    pixels counted apart."""
    counts = np.bincount(labels.ravel(), minlength=256)
    low = np.bincount(labels[low_evidence], minlength=256)
    return [
        ClassArea(c.id, c.name, int(counts[c.id]), round(float(counts[c.id]) * pixel_area_ha, 4), int(low[c.id]))
        for c in sorted(legend.classes, key=lambda c: c.id)
        if counts[c.id]
    ]


def field_results(
    labels: np.ndarray,
    confidence: np.ndarray,
    plan: AnalysisPlan,
    fields: Sequence[tuple[int, dict[str, Any]]],
    evidence: Evidence,
) -> list[FieldResult]:
    names = {c.id: c.name for c in plan.legend.classes}
    results = []
    for field_id, geometry in fields:
        local = transform_geom("EPSG:4326", plan.grid.crs, geometry)
        mask = (
            rasterize([(local, 1)], out_shape=plan.grid.shape, transform=plan.grid.transform, fill=0, dtype="uint8") > 0
        )
        mapped = mask & (labels > 0)
        if not mapped.any():
            continue
        counts = np.bincount(labels[mapped])
        majority = int(counts.argmax())
        gap_filled_share = evidence.gap_filled_share(mapped)
        results.append(
            FieldResult(
                field_id,
                majority,
                names[majority],
                round(float(counts[majority] / mapped.sum()), 4),
                round(float(confidence[mapped].mean() / 255), 4),
                int(mapped.sum()),
                gap_filled_share,
                evidence.is_insufficient(gap_filled_share),
            )
        )
    return results


def quicklook(labels: np.ndarray, classes: Sequence[ClassArea], legend: Legend) -> bytes:
    """A PNG of the map in the legend's colours (transparent where no data) with a legend of hectares."""
    table = np.zeros((256, 4), dtype=np.uint8)
    colours = legend.by_id()
    for value, rgba in legend.colour_table().items():
        table[value] = rgba
    image = Image.fromarray(table[labels], mode="RGBA")
    scale = QUICKLOOK_MAX_PX / max(image.size)
    if scale < 1:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.NEAREST
        )
    elif scale >= 2:  # small AOIs: whole-pixel enlargement keeps fields crisp
        factor = int(min(scale, 4))
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    font = ImageFont.load_default()
    row_px, legend_width = 16, 220
    legend_height = row_px * (len(classes) + 1) + 8
    canvas = Image.new("RGBA", (image.width + legend_width, max(image.height, legend_height)), (255, 255, 255, 255))
    canvas.alpha_composite(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = image.width + 8
    draw.text((x, 4), "class (hectares)", fill=(0, 0, 0, 255), font=font)
    for row, area in enumerate(classes, start=1):
        y = 4 + row * row_px
        draw.rectangle((x, y + 2, x + 12, y + 12), fill=(*colours[area.class_id].rgb, 255), outline=(0, 0, 0, 255))
        draw.text((x + 18, y), f"{area.class_name} ({area.area_ha:,.1f} ha)", fill=(0, 0, 0, 255), font=font)
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()

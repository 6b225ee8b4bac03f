"""Builders of scene files for ingestion tests: synthetic scenes cut into per-band
assets as public STAC APIs serve Sentinel-2 L2A, STAC items, and broken files."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds

from cropai import sentinel2
from cropai.synth import FileFormat, SyntheticScene, SyntheticSet, SynthSpec, synthesize

BBOX = (1.600, 48.200, 1.612, 48.209)  # about 0.9 km x 1 km
# Earth Search's asset keys; bands at 20 m there are written at 20 m here too.
ASSET_KEYS = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}
TWENTY_METRE = {"B05", "B06", "B07", "B8A", "B11", "B12", "SCL"}


def small_scene_set(out: Path, scenes: int = 3, file_format: FileFormat = "cog", seed: int = 5) -> SyntheticSet:
    spec = SynthSpec(
        BBOX,
        date(2025, 5, 1),
        date(2025, 5, 1 + 5 * (scenes - 1)),
        seed=seed,
        partial_swath_probability=0.0,
        file_format=file_format,
    )
    return synthesize(spec, out)


def band_assets(scene: SyntheticScene, out: Path) -> dict[str, Path]:
    """One single-band COG per band, 20 m bands averaged 2 x 2 (SCL by nearest)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    with rasterio.open(scene.path) as src:
        for index, band in enumerate((*sentinel2.BANDS, sentinel2.SCL_BAND), start=1):
            factor = 2 if band in TWENTY_METRE else 1
            shape = (src.height // factor, src.width // factor)
            resampling = Resampling.nearest if band == "SCL" else Resampling.average
            data = src.read(index, out_shape=shape, resampling=resampling)
            transform = src.transform @ Affine.scale(factor)
            path = out / f"{scene.scene_id}_{band}.tif"
            with rasterio.open(
                path,
                "w",
                driver="COG",
                width=shape[1],
                height=shape[0],
                count=1,
                dtype="uint16",
                crs=src.crs,
                transform=transform,
                nodata=0,
            ) as dst:
                dst.write(data, 1)
            paths[band] = path
    return paths


def stac_item(scene: SyntheticScene, hrefs: dict[str, str], collection: str = "sentinel-2-l2a") -> pystac.Item:
    """A Sentinel-2 L2A item as public STAC APIs publish it (per-band assets, eo:cloud_cover)."""
    with rasterio.open(scene.path) as src:
        bbox = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    geometry = {
        "type": "Polygon",
        "coordinates": [
            [[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]
        ],
    }
    item = pystac.Item(
        id=scene.scene_id,
        geometry=geometry,
        bbox=list(bbox),
        datetime=scene.acquired_at,
        properties={"eo:cloud_cover": round(100 * scene.cloud_fraction, 2), "platform": scene.platform},
        collection=collection,
    )
    for band, href in hrefs.items():
        item.add_asset(
            ASSET_KEYS[band],
            pystac.Asset(
                href,
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={"eo:bands": [{"name": ASSET_KEYS[band]}]},
            ),
        )
    item.add_asset(
        "thumbnail",
        pystac.Asset(hrefs["B02"].replace(".tif", ".jpg"), media_type=pystac.MediaType.JPEG, roles=["thumbnail"]),
    )
    return item


def corrupt_file(path: Path) -> Path:
    path.write_bytes(b"II*\x00" + np.random.default_rng(1).bytes(4096))
    return path


def truncated_copy(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def crs_less_copy(source: Path, path: Path) -> Path:
    with rasterio.open(source) as src:
        profile: dict[str, Any] = {**src.profile, "driver": "GTiff"}
        profile.pop("crs", None)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read())
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
    return path

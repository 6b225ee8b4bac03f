"""What analysis tests start from: a small season of generated scenes, ingested, with the
shipped model registered; or an analysis taken through its run's status moves without running."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from shapely.geometry import box, mapping
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis_records import create_analysis
from cropai.analysis_runs import finish, record_outputs, start
from cropai.config import Settings
from cropai.fields import add_fields
from cropai.ingest import ingest_candidate
from cropai.services import Services, services
from cropai.sources import discover
from cropai.synth import SyntheticSet, SynthSpec, synthesize
from models.registry import ensure_default_model
from models.versions import resolve
from testkit.crop_maps import MAIZE, WHEAT, write_two_class_map

AREA = (1.600, 48.200, 1.640, 48.222)  # about 3 km x 2.4 km
AOI = mapping(box(1.602, 48.202, 1.638, 48.220))  # 270 x 200 px: two tile cores
START, END = date(2025, 4, 1), date(2025, 9, 30)


@dataclass(frozen=True)
class Season:
    made: SyntheticSet
    field_classes: dict[int, int]  # FieldParcel id -> true class id


def ingested_season(svc: Services, folder: Path, seed: int = 9) -> Season:
    made = synthesize(SynthSpec(AREA, date(2025, 3, 25), date(2025, 10, 5), seed=seed), folder)
    for candidate in discover(str(made.root / "scenes"), svc.store):
        ingest_candidate(candidate, svc.store, svc.sessions)
    ensure_default_model(svc.store, svc.sessions)
    return Season(made, upload_crop_fields(svc, made))


def crop_parcels(made: SyntheticSet) -> list[dict]:
    """The synthetic crop parcels inside the AOI, as GeoJSON features with their true class."""
    aoi = shapely.geometry.shape(AOI)
    return [
        f
        for f in json.loads(made.parcels_path.read_text())["features"]
        if f["properties"]["is_crop"] and aoi.contains(shapely.geometry.shape(f["geometry"]))
    ]


def upload_crop_fields(svc: Services, made: SyntheticSet, owner_id: int | None = None) -> dict[int, int]:
    """The synthetic crop parcels inside the AOI as the owner's fields; returns field id -> true class."""
    features = crop_parcels(made)
    ids = add_fields(svc.sessions, {"type": "FeatureCollection", "features": features}, owner_id)
    return {field_id: f["properties"]["class_id"] for field_id, f in zip(ids, features, strict=True)}


def mapped(
    sessions: sessionmaker[Session],
    analysis_id: uuid.UUID,
    map_key: str,
    quicklook_key: str,
    *,
    completed: bool = True,
) -> None:
    """Move a queued analysis as its run would (started with the registered cropnet@1.0.0, its
    outputs recorded, finished), or leave it running with ``completed=False``."""
    assert start(sessions, analysis_id, resolve(sessions, "cropnet@1.0.0").id, batches_total=1)
    assert record_outputs(sessions, analysis_id, map_key, quicklook_key)
    if completed:
        assert finish(sessions, analysis_id)


def two_class_analysis(
    settings: Settings, owner_id: int, aoi: dict[str, Any], folder: Path, *, tiny_wheat: bool = False
) -> uuid.UUID:
    """A completed analysis of ``aoi`` (EPSG:4326 GeoJSON) whose map is the two-class test map
    (``testkit.crop_maps``), or all maize but a 4 x 4 px patch of winter wheat; made without a run."""
    svc = services(settings)
    analysis_id = create_analysis(svc.sessions, aoi, START, END, "cropnet@1.0.0", owner_id)
    path = write_two_class_map(folder / f"{analysis_id}.tif")
    if tiny_wheat:
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
            labels = dst.read(1)
            labels[labels == WHEAT.id] = MAIZE.id
            inside = np.argwhere(labels > 0)[0]
            labels[inside[0] : inside[0] + 4, inside[1] : inside[1] + 4] = WHEAT.id
            dst.write(labels, 1)
    map_key = f"analyses/{analysis_id}/cropmap.tif"
    svc.store.put(map_key, path)
    mapped(svc.sessions, analysis_id, map_key, f"analyses/{analysis_id}/quicklook.png")
    return analysis_id

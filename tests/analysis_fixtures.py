"""What analysis tests start from: a small season of generated scenes, ingested, with the
shipped model registered; or an analysis taken through its run's status moves without running."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import shapely
from shapely.geometry import box, mapping
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis_runs import finish, record_outputs, start
from cropai.fields import add_fields
from cropai.ingest import ingest_candidate
from cropai.services import Services
from cropai.sources import discover
from cropai.synth import SyntheticSet, SynthSpec, synthesize
from models.registry import ensure_default_model
from models.versions import resolve

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

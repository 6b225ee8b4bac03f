"""Tiles leave no seams: a map predicted tile by tile equals one predicted in a single pass."""

from pathlib import Path

import numpy as np
import zarr

from cropai.analysis import make_plan
from cropai.config import Settings
from cropai.db import Scene, upgrade_database
from cropai.services import services
from cropai.zarr_store import ObjectZarrStore
from models.infer import create_outputs, run_batch
from models.predict import load_predictor
from tests.analysis_fixtures import AOI, END, START, ingested_season


def test_tiled_prediction_equals_a_single_pass(settings: Settings, tmp_path: Path) -> None:
    svc = services(settings)
    upgrade_database(svc.engine)
    ingested_season(svc, tmp_path / "season")
    predictor = load_predictor(svc.store, svc.sessions, "cropnet@1.0.0")
    with svc.sessions() as session:
        scenes = [(s.object_key, s.acquired_at, s.footprint_geojson) for s in session.query(Scene)]
    contract = predictor.contract

    def predict(analysis_id: str, tile_size: int) -> tuple[np.ndarray, np.ndarray, int]:
        plan = make_plan(
            analysis_id,
            AOI,
            START,
            END,
            "cropnet@1.0.0",
            contract.months,
            contract.band_means,
            tile_size,
            contract.overlap,
            scenes,
            batch_pixels=10**9,
        )
        create_outputs(plan, svc.store)
        run_batch(plan, 0, svc.store, predictor)
        root = zarr.open_group(ObjectZarrStore(svc.store, plan.zarr_prefix), mode="r")
        return root["class"][:], root["confidence"][:], len(plan.tiles.tiles)

    tiled_class, tiled_confidence, tiles = predict("tiled", contract.tile_size)  # 256 px tiles, 224 px cores
    whole_class, whole_confidence, one = predict("whole", 512)  # one tile (480 px core) covers the AOI
    assert tiles >= 2 and one == 1
    assert np.array_equal(tiled_class, whole_class)
    assert np.abs(tiled_confidence.astype(int) - whole_confidence.astype(int)).max() <= 1

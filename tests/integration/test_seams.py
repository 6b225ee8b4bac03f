"""Tiles leave no seams: a map predicted tile by tile, each with the model's receptive radius as
halo, equals one predicted in a single pass."""

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import zarr

from cropai.analysis import CandidateScene, ModelInputs, make_plan
from cropai.analysis_records import AnalysisRequest
from cropai.config import Settings
from cropai.db import Scene, upgrade_database
from cropai.services import services
from cropai.zarr_store import ObjectZarrStore
from models.infer import create_outputs, run_batch
from models.predict import load_predictor
from models.versions import resolve
from tests.analysis_fixtures import AOI, END, START, ingested_season


def test_tiled_prediction_equals_a_single_pass(settings: Settings, tmp_path: Path) -> None:
    svc = services(settings)
    upgrade_database(svc.engine)
    ingested_season(svc, tmp_path / "season")
    predictor = load_predictor(svc.store, svc.sessions, "cropnet@1.0.0")
    with svc.sessions() as session:
        scenes = [CandidateScene(s.object_key, s.acquired_at, s.footprint_geojson) for s in session.query(Scene)]
    model = ModelInputs.of_version(resolve(svc.sessions, "cropnet@1.0.0"))

    def predict(tile_size: int, halo: int = model.overlap) -> tuple[np.ndarray, np.ndarray, int]:
        request = AnalysisRequest(uuid.uuid4(), AOI, START, END, model.name, batch_pixels=10**9)  # one batch
        plan = make_plan(request, replace(model, tile_size=tile_size, overlap=halo), scenes)
        create_outputs(plan, svc.store)
        run_batch(plan, 0, svc.store, predictor)
        predictions = ObjectZarrStore(svc.store, plan.zarr_prefix)
        bands = [np.asarray(zarr.open_array(predictions, path=name, mode="r")[:]) for name in ("class", "confidence")]
        return bands[0], bands[1], len(plan.tiles.tiles)

    assert model.overlap == 2  # the shipped model's receptive radius: two 3 x 3 convolutions
    tiled_class, tiled_confidence, tiles = predict(model.tile_size)  # 256 px tiles, 252 px cores
    whole_class, whole_confidence, one = predict(512)  # one tile (508 px core) covers the AOI
    assert tiles >= 2 and one == 1
    assert np.array_equal(tiled_class, whole_class)
    assert np.abs(tiled_confidence.astype(int) - whole_confidence.astype(int)).max() <= 1
    # A halo short of the receptive radius shows at the cores' edges: the halo is what keeps seams away.
    _, short_confidence, _ = predict(model.tile_size, halo=1)
    assert (short_confidence != tiled_confidence).any()

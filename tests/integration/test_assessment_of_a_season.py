"""The assessment's promise on a generated season whose truth is known: the analyze flow maps
the season, independent stratified samples of that map are labelled from the truth, and the
error-adjusted area intervals hold the true class areas about as often as they say (95 %)."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from cropai.analysis_records import create_analysis
from cropai.assessment import ClassMap, assess_sample
from cropai.config import Settings
from cropai.crops import SYNTHETIC_LEGEND
from cropai.reference_labels import LabelledPoint
from cropai.sample_design import design_sample
from cropai.services import services
from flows.analyze import analyze
from tests.analysis_fixtures import AOI, END, START, ingested_season

SAMPLES = 50


@pytest.mark.parametrize("database_settings", ["sqlite"], indirect=True)
def test_area_intervals_from_samples_of_a_mapped_season_cover_its_true_areas_near_95_percent(
    flow_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROPAI_DASK_WORKERS", "2")
    svc = services(flow_settings)
    season = ingested_season(svc, tmp_path / "season")
    analysis_id = create_analysis(svc.sessions, AOI, START, END, "cropnet@latest")
    analyze(str(analysis_id))
    with svc.store.gdal_env(), rasterio.open(svc.store.gdal_path(f"analyses/{analysis_id}/cropmap.tif")) as src:
        mapped, transform, crs = src.read(1), src.transform, str(src.crs)
    truth = np.zeros_like(mapped)
    with rasterio.open(season.made.labels_path) as src:
        reproject(
            src.read(1),
            truth,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=transform,
            dst_crs=crs,
            resampling=Resampling.nearest,
        )
    mapped[truth == 0] = 0  # the frame: mapped pixels with a known truth
    wrong = float(((mapped != truth) & (mapped > 0)).sum() / (mapped > 0).sum())
    assert 0.0 < wrong < 0.5  # a map with errors to correct, not a copy of the truth
    true_ha = {c.name: float(((truth == c.id) & (mapped > 0)).sum()) * 0.01 for c in SYNTHETIC_LEGEND.classes}
    class_map = ClassMap(mapped, transform, crs)
    covered = []
    for seed in range(SAMPLES):
        design = design_sample(
            mapped, transform, crs, SYNTHETIC_LEGEND, target_overall_se=0.02, minimum_per_class=20, seed=seed
        )
        points = [
            LabelledPoint(p.point_id, p.lon, p.lat, p.map_class_id, int(truth[p.row, p.col])) for p in design.points
        ]
        result = assess_sample(points, class_map, SYNTHETIC_LEGEND, analysis_id)
        for row in result["per_class"]:
            low, high = row["estimated_area_ha"]["ci95"]
            covered.append(low <= true_ha[row["name"]] <= high)
    coverage = float(np.mean(covered))
    assert 0.86 <= coverage <= 1.0, f"{coverage:.1%} of {len(covered)} class intervals held the true area"

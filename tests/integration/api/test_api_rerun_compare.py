"""Repeating a completed analysis on the inputs it recorded, and comparing two analyses: a rerun
reads its original's scene versions even after newer ones were ingested, and maps the same."""

import shutil
from datetime import date
from pathlib import Path

import pytest
import rasterio
from fastapi.testclient import TestClient
from shapely.geometry import box, mapping
from sqlalchemy import func, select, update

from cropai.analysis import ModelInputs, plan_from_catalogue
from cropai.analysis_records import create_analysis, read_request
from cropai.config import Settings
from cropai.db import Analysis
from cropai.ingest import ingest_candidate
from cropai.services import Services, services
from cropai.sources import discover
from flows.analyze import analyze
from models.versions import resolve
from tests.analysis_fixtures import END, START, Season, ingested_season, two_class_analysis, upload_crop_fields
from tests.api_fixtures import SQUARE, Account, new_account
from tests.conftest import export_settings

TINY_AOI = mapping(box(1.610, 48.206, 1.615, 48.209))  # about 370 x 330 m: one tile


def input_versions(analysis: dict) -> list[tuple[str, int, str]]:
    return [(s["scene_id"], s["version"], s["content_hash"]) for s in analysis["input_scenes"]]


def completed_by_its_flow(client: TestClient, account: Account, analysis_id: str) -> dict:
    """Run the analysis' flow in this process, as the deployment's worker would, and read it back."""
    analyze(analysis_id)
    analysis = client.get(f"/analyses/{analysis_id}", headers=account.headers).json()
    assert analysis["status"] == "completed", analysis
    return analysis


def ingest_new_version(svc: Services, data: Season, scene_id: str, folder: Path) -> None:
    """Reprocess one scene: the same scene id with other pixels becomes its next version."""
    original = next(s.path for s in data.made.scenes if s.scene_id == scene_id)
    folder.mkdir()
    changed = shutil.copy(original, folder / original.name)
    with rasterio.open(changed, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.write(dst.read() // 2)
    for candidate in discover(str(folder), svc.store):
        ingest_candidate(candidate, svc.store, svc.sessions)


@pytest.fixture
def season(api_app_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Services, Season]:
    export_settings(monkeypatch, api_app_settings)  # the flow run reads the API's database and store
    monkeypatch.setenv("CROPAI_DASK_WORKERS", "1")
    svc = services(api_app_settings)
    return svc, ingested_season(svc, tmp_path / "season")


def test_a_rerun_of_a_completed_analysis_reads_its_scene_versions_and_maps_the_same(
    client: TestClient, api_app_settings: Settings, season: tuple[Services, Season], tmp_path: Path
) -> None:
    svc, data = season
    analyst = new_account(client, api_app_settings)
    upload_crop_fields(svc, data.made, analyst.id)
    request = {"name": "tiny", "aoi": TINY_AOI, "start_date": str(START), "end_date": str(END)}
    submitted = client.post("/analyses", json=request, headers=analyst.headers)
    assert submitted.status_code == 202, submitted.text
    original = completed_by_its_flow(client, analyst, submitted.json()["id"])
    reprocessed = original["input_scenes"][0]["scene_id"]
    ingest_new_version(svc, data, reprocessed, tmp_path / "reprocessed")

    response = client.post(f"/analyses/{original['id']}/rerun", headers=analyst.headers)
    assert response.status_code == 202, response.text
    rerun = response.json()
    assert response.headers["location"] == f"/analyses/{rerun['id']}" and rerun["id"] != original["id"]
    assert rerun["rerun_of"] == original["id"] and rerun["model"] == original["model_version"]
    assert rerun["name"] == "tiny (rerun)" and rerun["status"] == "queued"
    repeated = completed_by_its_flow(client, analyst, rerun["id"])
    assert input_versions(repeated) == input_versions(original)

    comparison = client.get(f"/analyses/{original['id']}/compare/{rerun['id']}", headers=analyst.headers)
    assert comparison.status_code == 200, comparison.text
    body = comparison.json()
    assert body["identical"] and body["reason"] is None and body["pixels_differing"] == 0
    assert body["fields_changed"] == [] and all(c["difference_ha"] == 0 for c in body["classes"])
    assert sum(c["area_ha_a"] for c in body["classes"]) > 0

    # A new submission, by contrast, would read the reprocessed version.
    fresh = create_analysis(svc.sessions, TINY_AOI, START, END, "cropnet@1.0.0", analyst.id)
    model = ModelInputs.of_version(resolve(svc.sessions, "cropnet@1.0.0"))
    plan = plan_from_catalogue(svc.sessions, read_request(svc.sessions, fresh), model)
    assert (reprocessed, 2) in [(s["scene_id"], s["version"]) for s in plan.input_scenes]


# --- cheap cases: completed analyses made without a flow run ----------------------------------


def mapped_analysis(
    settings: Settings, owner_id: int, folder: Path, *, tiny_wheat: bool = False, scenes: list | None = None
) -> str:
    """A completed analysis of the two-class test map, with the scene versions it read when given."""
    analysis_id = two_class_analysis(settings, owner_id, SQUARE, folder, tiny_wheat=tiny_wheat)
    if scenes is not None:
        with services(settings).sessions.begin() as session:
            session.execute(update(Analysis).where(Analysis.id == analysis_id).values(input_scenes=scenes))
    return str(analysis_id)


def test_comparing_two_different_maps_gives_the_class_areas_that_moved(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    a = mapped_analysis(api_app_settings, analyst.id, tmp_path)
    b = mapped_analysis(api_app_settings, analyst.id, tmp_path, tiny_wheat=True)
    body = client.get(f"/analyses/{a}/compare/{b}", headers=analyst.headers).json()
    assert not body["identical"] and body["pixels_differing"] > 0 and "different class" in body["reason"]
    by_name = {c["name"]: c for c in body["classes"]}
    assert by_name["winter_wheat"]["difference_ha"] < 0 < by_name["maize"]["difference_ha"]
    assert by_name["maize"]["difference_ha"] == pytest.approx(-by_name["winter_wheat"]["difference_ha"])


def test_comparing_with_another_owners_analysis_is_a_404_and_with_an_unfinished_one_a_409(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst, other = new_account(client, api_app_settings), new_account(client, api_app_settings)
    mine = mapped_analysis(api_app_settings, analyst.id, tmp_path)
    theirs = mapped_analysis(api_app_settings, other.id, tmp_path)
    assert client.get(f"/analyses/{mine}/compare/{theirs}", headers=analyst.headers).status_code == 404
    queued = create_analysis(
        services(api_app_settings).sessions, SQUARE, date(2025, 4, 1), date(2025, 9, 30), "cropnet@1.0.0", analyst.id
    )
    refused = client.get(f"/analyses/{mine}/compare/{queued}", headers=analyst.headers)
    assert refused.status_code == 409 and "queued" in refused.json()["detail"]


def test_a_rerun_of_a_queued_analysis_is_a_409(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    request = {"aoi": SQUARE, "start_date": "2025-04-01", "end_date": "2025-09-30"}
    made = client.post("/analyses", json=request, headers=analyst.headers).json()
    refused = client.post(f"/analyses/{made['id']}/rerun", headers=analyst.headers)
    assert refused.status_code == 409 and "queued" in refused.json()["detail"]


def test_a_rerun_whose_scene_version_left_the_catalogue_is_refused_naming_it(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    gone = {"scene_id": "S2B_20250611", "version": 3, "content_hash": "ab" * 32, "acquired_at": "2025-06-11T10:30:00"}
    completed = mapped_analysis(api_app_settings, analyst.id, tmp_path, scenes=[gone])
    refused = client.post(f"/analyses/{completed}/rerun", headers=analyst.headers)
    assert refused.status_code == 409 and "S2B_20250611 v3" in refused.json()["detail"]
    with services(api_app_settings).sessions() as session:
        assert session.scalar(select(func.count()).select_from(Analysis)) == 1  # nothing was queued

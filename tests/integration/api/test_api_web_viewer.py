"""What the web map viewer gets from the API: map tiles rendered from the analysis' COG in
the S3 store (the MinIO code path) and cached beside it, and its pages under /app."""

import io
import uuid
from datetime import date
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from cropai.analysis_records import create_analysis
from cropai.config import Settings
from cropai.services import services
from cropai.webtiles import CONFIDENCE_RAMP, TILE_PX, MapLayer, tile_key, tiles_prefix
from testkit.crop_maps import AWAY, CORNER, MAIZE, WHEAT, tile_of, write_two_class_map
from tests.analysis_fixtures import mapped
from tests.api_fixtures import SQUARE, make_client, new_account


def mapped_analysis(settings: Settings, owner_id: int, folder: Path, *, completed: bool = True) -> uuid.UUID:
    svc = services(settings)
    analysis_id = create_analysis(svc.sessions, SQUARE, date(2025, 4, 1), date(2025, 9, 30), "cropnet@1.0.0", owner_id)
    map_key = f"analyses/{analysis_id}/cropmap.tif"
    svc.store.put(map_key, write_two_class_map(folder / "cropmap.tif"))
    mapped(svc.sessions, analysis_id, map_key, f"analyses/{analysis_id}/quicklook.png", completed=completed)
    return analysis_id


def tile_url(analysis_id: uuid.UUID, z: int, x: int, y: int) -> str:
    return f"/analyses/{analysis_id}/tiles/{z}/{x}/{y}.png"


def test_tiles_are_rendered_from_the_cog_in_s3_and_cached_beside_it(s3_api_settings: Settings, tmp_path: Path) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        response = client.get(tile_url(analysis_id, CORNER.z, CORNER.x, CORNER.y), headers=analyst.headers)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"].startswith("private")
        rgba = np.asarray(Image.open(io.BytesIO(response.content)))
        assert rgba.shape == (TILE_PX, TILE_PX, 4)
        assert {tuple(int(v) for v in c) for c in rgba[rgba[..., 3] > 0]} == {(*MAIZE.rgb, 255), (*WHEAT.rgb, 255)}
        assert services(s3_api_settings).store.get(tile_key(str(analysis_id), CORNER)) == response.content
        away = client.get(tile_url(analysis_id, AWAY.z, AWAY.x, AWAY.y), headers=analyst.headers)
        assert away.status_code == 200 and not np.asarray(Image.open(io.BytesIO(away.content)))[..., 3].any()


def test_tiles_need_a_completed_analysis_one_may_see(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst, other = new_account(client, api_app_settings), new_account(client, api_app_settings)
    done = mapped_analysis(api_app_settings, analyst.id, tmp_path)
    running = mapped_analysis(api_app_settings, analyst.id, tmp_path, completed=False)
    corner = (CORNER.z, CORNER.x, CORNER.y)
    assert client.get(tile_url(done, *corner)).status_code == 401
    assert client.get(tile_url(done, *corner), headers=other.headers).status_code == 404
    refused = client.get(tile_url(running, *corner), headers=analyst.headers)
    assert refused.status_code == 409 and "is running" in refused.json()["detail"]
    beyond = client.get(tile_url(done, 3, 8, 0), headers=analyst.headers)
    assert beyond.status_code == 404 and "x and y run 0..7" in beyond.json()["detail"]


def test_confidence_tiles_paint_the_ramp_and_are_cached_apart_from_the_class_tiles(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    done = mapped_analysis(api_app_settings, analyst.id, tmp_path)
    url = tile_url(done, CORNER.z, CORNER.x, CORNER.y)
    response = client.get(url, params={"layer": "confidence"}, headers=analyst.headers)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    rgba = np.asarray(Image.open(io.BytesIO(response.content)))
    sure = next(s for s in CONFIDENCE_RAMP if s.lower_percent <= 200 / 255 * 100 < s.upper_percent)  # the map's 78 %
    assert {tuple(int(v) for v in c) for c in rgba[rgba[..., 3] > 0]} == {(*sure.rgb, 255)}
    store = services(api_app_settings).store
    assert store.get(tile_key(str(done), CORNER, MapLayer.CONFIDENCE)) == response.content
    classes = client.get(url, headers=analyst.headers)  # the default layer
    assert store.get(tile_key(str(done), CORNER)) == classes.content != response.content


def test_an_unknown_tile_layer_is_refused_naming_the_layers(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    done = mapped_analysis(api_app_settings, analyst.id, tmp_path)
    refused = client.get(
        tile_url(done, CORNER.z, CORNER.x, CORNER.y), params={"layer": "ndvi"}, headers=analyst.headers
    )
    assert refused.status_code == 422
    assert "'class'" in refused.text and "'confidence'" in refused.text


def test_tiles_beyond_the_maps_zooms_are_refused_and_never_cached(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    done = mapped_analysis(api_app_settings, analyst.id, tmp_path)
    deepest = tile_of(1.606, 48.204, 22)
    refused = client.get(tile_url(done, deepest.z, deepest.x, deepest.y), headers=analyst.headers)
    assert refused.status_code == 404 and "tiled at zooms 11 to 17" in refused.json()["detail"]
    assert services(api_app_settings).store.list(tiles_prefix(str(done))) == []


def test_the_viewer_pages_are_served_under_app_with_a_content_security_policy(client: TestClient) -> None:
    assert client.get("/app", follow_redirects=False).headers["location"] == "/app/"
    page = client.get("/app/")
    assert page.status_code == 200 and '<template id="login-view">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "https://tile.openstreetmap.org" in policy
    assert client.get("/app/vendor/leaflet/leaflet.js").status_code == 200
    assert "javascript" in client.get("/app/js/app.js").headers["content-type"]
    assert client.get("/app/config.json").json()["basemap_url"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


def test_an_empty_basemap_setting_leaves_the_viewer_with_no_outside_address(api_app_settings: Settings) -> None:
    with make_client(api_app_settings.model_copy(update={"basemap_url": ""})) as client:
        assert client.get("/app/config.json").json()["basemap_url"] == ""
        assert "http" not in client.get("/app/").headers["content-security-policy"]

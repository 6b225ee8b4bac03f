"""Results of a completed analysis from an S3 store (the MinIO code path): the COG
streamed through the API or handed out as a presigned URL."""

import urllib.request
import uuid
from datetime import date
from pathlib import Path
from xml.etree import ElementTree

from fastapi.testclient import TestClient

from cropai.analysis_records import create_analysis
from cropai.config import Settings
from cropai.crops import SYNTHETIC_LEGEND
from cropai.services import services
from tests.analysis_fixtures import mapped, two_class_analysis
from tests.api_fixtures import SQUARE, make_client, new_account
from tests.gdal_categories import class_band_categories

MAP_BYTES = b"II*\x00" + bytes(range(256)) * 5000  # ~1.3 MB: streamed in more than one chunk


def completed_analysis(settings: Settings, owner_id: int) -> uuid.UUID:
    svc = services(settings)
    analysis_id = create_analysis(svc.sessions, SQUARE, date(2025, 4, 1), date(2025, 9, 30), "cropnet@1.0.0", owner_id)
    map_key, quicklook_key = f"analyses/{analysis_id}/cropmap.tif", f"analyses/{analysis_id}/quicklook.png"
    svc.store.put(map_key, MAP_BYTES, content_type="image/tiff")
    svc.store.put(quicklook_key, b"\x89PNG\r\n\x1a\nfake", content_type="image/png")
    mapped(svc.sessions, analysis_id, map_key, quicklook_key)
    return analysis_id


def test_map_streams_from_s3_and_presigns(s3_api_settings: Settings) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = completed_analysis(s3_api_settings, analyst.id)
        streamed = client.get(f"/analyses/{analysis_id}/map", headers=analyst.headers)
        assert streamed.status_code == 200 and streamed.content == MAP_BYTES
        assert f"cropmap-{analysis_id}.tif" in streamed.headers["content-disposition"]
        presigned = client.get(f"/analyses/{analysis_id}/map?presign=true", headers=analyst.headers).json()
        with urllib.request.urlopen(presigned["url"], timeout=10) as response:
            assert response.read() == MAP_BYTES  # no credentials needed
        assert client.get(f"/analyses/{analysis_id}/quicklook.png", headers=analyst.headers).content.startswith(
            b"\x89PNG"
        )


def test_a_missing_map_object_is_a_404_not_a_crash(s3_api_settings: Settings) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = completed_analysis(s3_api_settings, analyst.id)
        services(s3_api_settings).store.delete(f"analyses/{analysis_id}/cropmap.tif")
        response = client.get(f"/analyses/{analysis_id}/map", headers=analyst.headers)
        assert response.status_code == 404 and "cropmap.tif" in response.json()["detail"]


def test_presign_on_a_folder_store_says_to_download_instead(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    analysis_id = completed_analysis(api_app_settings, analyst.id)
    response = client.get(f"/analyses/{analysis_id}/map?presign=true", headers=analyst.headers)
    assert response.status_code == 409 and "download without presign" in response.json()["detail"]


def test_the_evidence_raster_downloads_beside_the_map_and_its_absence_is_a_404(
    client: TestClient, api_app_settings: Settings
) -> None:
    analyst = new_account(client, api_app_settings)
    analysis_id = completed_analysis(api_app_settings, analyst.id)
    body = client.get(f"/analyses/{analysis_id}", headers=analyst.headers).json()
    assert body["links"]["evidence"] == f"/analyses/{analysis_id}/evidence"
    missing = client.get(body["links"]["evidence"], headers=analyst.headers)  # a map from before evidence was kept
    assert missing.status_code == 404 and "evidence.tif" in missing.json()["detail"]
    services(api_app_settings).store.put(f"analyses/{analysis_id}/evidence.tif", MAP_BYTES, content_type="image/tiff")
    streamed = client.get(body["links"]["evidence"], headers=analyst.headers)
    assert streamed.status_code == 200 and streamed.content == MAP_BYTES
    assert f"evidence-{analysis_id}.tif" in streamed.headers["content-disposition"]


def test_the_map_style_gives_qgis_the_class_names_and_colours(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    analysis_id = completed_analysis(api_app_settings, analyst.id)
    body = client.get(f"/analyses/{analysis_id}", headers=analyst.headers).json()
    response = client.get(body["links"]["map_style"], headers=analyst.headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    assert f"cropmap-{analysis_id}.qml" in response.headers["content-disposition"]  # beside cropmap-{id}.tif
    renderer = ElementTree.fromstring(response.content).find("pipe/rasterrenderer")
    assert renderer is not None and renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = {int(e.get("value", "")): (e.get("label"), e.get("color")) for e in renderer.iter("paletteEntry")}
    assert entries == {c.id: (c.name, c.colour) for c in SYNTHETIC_LEGEND.classes}
    other = new_account(client, api_app_settings)  # someone else's analysis stays hidden
    assert client.get(body["links"]["map_style"], headers=other.headers).status_code == 404


def test_gdal_reads_the_class_names_from_the_sidecar_saved_beside_the_map(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    """QGIS and gdalinfo take category names and the attribute table from GDAL: a map downloaded
    with its sidecar under the names the API gives them has both."""
    analyst = new_account(client, api_app_settings)
    analysis_id = two_class_analysis(api_app_settings, analyst.id, SQUARE, tmp_path)
    links = client.get(f"/analyses/{analysis_id}", headers=analyst.headers).json()["links"]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for link in ("map", "map_categories"):
        response = client.get(links[link], headers=analyst.headers)
        name = response.headers["content-disposition"].split('filename="')[1].rstrip('"')
        (downloads / name).write_bytes(response.content)
    names, rows = class_band_categories(downloads / f"cropmap-{analysis_id}.tif")
    assert names[0] == "no data" and {i: names[i] for i in range(1, len(names)) if names[i]} == {
        c.id: c.name for c in SYNTHETIC_LEGEND.classes
    }
    assert [(int(r[0]), r[1], tuple(int(v) for v in r[2:6])) for r in rows] == [
        (c.id, c.name, (*c.rgb, 255)) for c in SYNTHETIC_LEGEND.classes
    ]

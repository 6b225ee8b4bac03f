"""Reading the scene catalogue and model versions; uploading and isolating field parcels."""

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from cropai.config import Settings
from cropai.db import Role, Scene
from cropai.services import services
from tests.api_fixtures import new_account


def parcel(x: float, y: float, name: str, size: float = 0.002) -> dict:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {
        "type": "Feature",
        "id": name,
        "properties": {"name": name},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def collection(*features: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def add_scene(
    settings: Settings,
    scene_id: str,
    day: int,
    cloud: float,
    bbox: tuple[float, float, float, float],
    tile: str | None = None,
) -> None:
    minx, miny, maxx, maxy = bbox
    with services(settings).sessions.begin() as session:
        session.add(
            Scene(
                scene_id=scene_id,
                content_hash=scene_id.ljust(64, "0"),
                object_key=f"scenes/{scene_id}/x.tif",
                source_uri=f"/in/{scene_id}.tif",
                platform="sentinel-2a",
                mgrs_tile=tile,
                acquired_at=datetime(2025, 5, day, 10, 30, tzinfo=UTC),
                crs="EPSG:32631",
                resolution_m=10.0,
                width=100,
                height=100,
                bands=["B02"],
                cloud_fraction=cloud,
                footprint_geojson={
                    "type": "Polygon",
                    "coordinates": [[[minx, miny], [maxx, miny], [maxx, maxy], [minx, miny]]],
                },
                minx=minx,
                miny=miny,
                maxx=maxx,
                maxy=maxy,
            )
        )


def test_scene_search_filters_by_bbox_date_and_cloud(client: TestClient, api_app_settings: Settings) -> None:
    viewer = new_account(client, api_app_settings, Role.viewer)
    add_scene(api_app_settings, "S2A_beauce_clear", 3, 0.05, (1.5, 48.1, 1.7, 48.3))
    add_scene(api_app_settings, "S2A_beauce_cloudy", 8, 0.80, (1.5, 48.1, 1.7, 48.3))
    add_scene(api_app_settings, "S2A_elsewhere", 3, 0.0, (10.0, 50.0, 10.2, 50.2))

    def found(query: str) -> list[str]:
        response = client.get(f"/scenes?{query}", headers=viewer.headers)
        assert response.status_code == 200, response.text
        return [s["scene_id"] for s in response.json()["items"]]

    assert found("bbox=1.6,48.2,1.64,48.22") == ["S2A_beauce_clear", "S2A_beauce_cloudy"]
    assert found("bbox=1.6,48.2,1.64,48.22&max_cloud=0.2") == ["S2A_beauce_clear"]
    assert found("start=2025-05-05T00:00:00Z") == ["S2A_beauce_cloudy"]
    scene = client.get("/scenes", headers=viewer.headers).json()["items"][0]
    assert scene["bbox_wgs84"] == [1.5, 48.1, 1.7, 48.3] and scene["acquired_at"].endswith("Z")


def test_scene_search_filters_by_mgrs_tile_as_users_write_it(client: TestClient, api_app_settings: Settings) -> None:
    viewer = new_account(client, api_app_settings, Role.viewer)
    add_scene(api_app_settings, "S2A_MSIL2A_20250503_T31UDP", 3, 0.1, (1.5, 48.1, 1.7, 48.3), tile="31UDP")
    add_scene(api_app_settings, "S2A_MSIL2A_20250503_T31UCP", 3, 0.1, (0.1, 48.1, 0.3, 48.3), tile="31UCP")
    for spelling in ("31UDP", "T31UDP", "t31udp"):
        response = client.get(f"/scenes?tile={spelling}", headers=viewer.headers)
        assert response.status_code == 200, response.text
        [scene] = response.json()["items"]
        assert scene["scene_id"] == "S2A_MSIL2A_20250503_T31UDP" and scene["mgrs_tile"] == "31UDP"
    refused = client.get("/scenes?tile=Flanders", headers=viewer.headers)
    assert refused.status_code == 422 and "MGRS tile" in refused.text


def test_a_malformed_bbox_is_a_422_naming_it(client: TestClient, api_app_settings: Settings) -> None:
    viewer = new_account(client, api_app_settings, Role.viewer)
    for bbox in ("1,2,3", "a,b,c,d", "10,48,1,49", "0,-95,1,0"):
        response = client.get(f"/scenes?bbox={bbox}", headers=viewer.headers)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "bbox"], bbox


def test_models_are_listed_with_their_metrics(client: TestClient, api_app_settings: Settings) -> None:
    viewer = new_account(client, api_app_settings, Role.viewer)
    [model] = client.get("/models", headers=viewer.headers).json()
    assert model["ref"] == "cropnet@1.0.0"
    assert model["metrics"]["macro_f1"] > 0.9 and "maize" in [c["name"] for c in model["classes"]]


def test_field_upload_is_all_or_nothing_and_names_the_bad_feature(
    client: TestClient, api_app_settings: Settings
) -> None:
    analyst = new_account(client, api_app_settings)
    bad = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "LineString", "coordinates": [[1.6, 48.2], [1.61, 48.2]]},
    }
    response = client.post("/fields", json=collection(parcel(1.60, 48.20, "ok"), bad), headers=analyst.headers)
    assert response.status_code == 422
    assert (
        response.json()["detail"][0]["loc"] == ["body", "features"]
        and "feature 1" in response.json()["detail"][0]["msg"]
    )
    assert client.get("/fields", headers=analyst.headers).json()["total"] == 0


def test_field_upload_refuses_other_geojson_types_and_empty_collections(
    client: TestClient, api_app_settings: Settings
) -> None:
    analyst = new_account(client, api_app_settings)
    assert client.post("/fields", json={"type": "Feature", "features": []}, headers=analyst.headers).status_code == 422
    assert client.post("/fields", json=collection(), headers=analyst.headers).status_code == 422


def test_fields_are_private_to_their_owner(client: TestClient, api_app_settings: Settings) -> None:
    alice, bob = new_account(client, api_app_settings), new_account(client, api_app_settings)
    created = client.post(
        "/fields", json=collection(parcel(1.60, 48.20, "north"), parcel(1.61, 48.21, "south")), headers=alice.headers
    )
    assert created.status_code == 201 and created.json()["count"] == 2
    first = created.json()["ids"][0]
    mine = client.get("/fields?bbox=1.599,48.199,1.605,48.205", headers=alice.headers).json()
    assert [f["properties"]["name"] for f in mine["features"]] == ["north"]
    assert mine["features"][0]["properties"]["area_ha"] > 0
    assert client.get("/fields", headers=bob.headers).json()["total"] == 0
    assert client.get(f"/fields/{first}", headers=bob.headers).status_code == 404
    assert client.delete(f"/fields/{first}", headers=bob.headers).status_code == 404
    assert client.delete(f"/fields/{first}", headers=alice.headers).status_code == 204
    assert client.get(f"/fields/{first}", headers=alice.headers).status_code == 404


def test_field_upload_limit(api_app_settings: Settings, tmp_path: Path) -> None:
    from tests.api_fixtures import make_client

    with make_client(api_app_settings.model_copy(update={"max_fields_per_upload": 1})) as client:
        analyst = new_account(client, api_app_settings)
        response = client.post(
            "/fields", json=collection(parcel(1.6, 48.2, "a"), parcel(1.61, 48.2, "b")), headers=analyst.headers
        )
        assert response.status_code == 422 and "at most 1 per upload" in response.json()["detail"][0]["msg"]


def ten_parcels() -> dict:
    return collection(*(parcel(1.60 + 0.003 * i, 48.20, f"p{i}") for i in range(10)))


def test_an_upload_repeated_with_its_idempotency_key_stores_nothing_new(
    client: TestClient, api_app_settings: Settings
) -> None:
    analyst = new_account(client, api_app_settings)
    keyed = {**analyst.headers, "Idempotency-Key": "parcels-2025-04"}
    first = client.post("/fields", json=ten_parcels(), headers=keyed)
    again = client.post("/fields", json=ten_parcels(), headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and first.json()["count"] == 10
    assert client.get("/fields", headers=analyst.headers).json()["total"] == 10


def test_idempotency_keys_belong_to_their_owner(client: TestClient, api_app_settings: Settings) -> None:
    alice, bob = new_account(client, api_app_settings), new_account(client, api_app_settings)
    mine = client.post("/fields", json=ten_parcels(), headers={**alice.headers, "Idempotency-Key": "k"}).json()
    theirs = client.post("/fields", json=ten_parcels(), headers={**bob.headers, "Idempotency-Key": "k"}).json()
    assert set(mine["ids"]).isdisjoint(theirs["ids"])
    assert client.get("/fields", headers=bob.headers).json()["total"] == 10


def test_racing_uploads_with_one_idempotency_key_store_one_set(client: TestClient, api_app_settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    analyst = new_account(client, api_app_settings)
    keyed = {**analyst.headers, "Idempotency-Key": "retried-by-a-flaky-network"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: client.post("/fields", json=ten_parcels(), headers=keyed), range(4)))
    assert {a.status_code for a in answers} == {201}
    assert len({tuple(a.json()["ids"]) for a in answers}) == 1
    assert client.get("/fields", headers=analyst.headers).json()["total"] == 10


def test_uploads_without_a_key_are_each_stored(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    for _ in range(2):
        assert client.post("/fields", json=ten_parcels(), headers=analyst.headers).status_code == 201
    assert client.get("/fields", headers=analyst.headers).json()["total"] == 20


def test_admins_start_ingestion_runs_and_others_may_not(client: TestClient, api_app_settings: Settings) -> None:
    import uuid

    from prefect.client.orchestration import get_client

    admin, analyst = new_account(client, api_app_settings, Role.admin), new_account(client, api_app_settings)
    body = {"source": "store:inbox/2025-05/"}
    assert client.post("/ingest", json=body, headers=analyst.headers).status_code == 403
    started = client.post("/ingest", json=body, headers=admin.headers)
    assert started.status_code == 202
    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(uuid.UUID(started.json()["flow_run_id"]))
    assert run.parameters["source"] == "store:inbox/2025-05/"
    assert client.get("/ingest/runs", headers=admin.headers).json()["total"] == 0  # no run has reported yet

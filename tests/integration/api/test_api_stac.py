"""The catalogue as a STAC API: completed analyses and ingested scenes are Items a STAC client
(QGIS, STAC Browser, odc-stac) finds by bbox and datetime and opens through their asset links,
each user finding only the analyses they may see. Items, collections and the landing page are
validated against the STAC 1.1 schemas that pystac carries (no network here, so the
extensions' schemas are not fetched; their fields are read back through pystac's classes)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
import pystac
import pystac.validation
import pytest
from fastapi.testclient import TestClient
from pystac.extensions.classification import ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from pystac_client import Client
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis_records import model_legend
from cropai.config import Settings
from cropai.db import Analysis, Role, Scene
from cropai.ingest import ingest_candidate
from cropai.services import services
from cropai.sources import discover
from testkit.realdata import realdata
from tests.analysis_fixtures import two_class_analysis
from tests.api_fixtures import SQUARE, Account, api_process, new_account

FAR_AWAY = {  # an AOI in Bavaria, far from SQUARE
    "type": "Polygon",
    "coordinates": [[[11.50, 48.10], [11.53, 48.10], [11.53, 48.12], [11.50, 48.12], [11.50, 48.10]]],
}
TRIANGLE = {  # the lower-left half of SQUARE
    "type": "Polygon",
    "coordinates": [[[1.60, 48.20], [1.64, 48.20], [1.60, 48.22], [1.60, 48.20]]],
}
# Three real Sentinel-2 L2A acquisitions over Flanders, 2018.
REAL_SCENES = (
    "S2_20180804_0000280849BAC91C.tif",
    "S2_20180918_0000280849BAC91C.tif",
    "S2_20181013_0000280849BAC91C.tif",
)


def valid(stac_dict: dict[str, Any], kind: pystac.STACObjectType) -> dict[str, Any]:
    """The dict, once it passes the core STAC schema of its kind."""
    pystac.validation.validate_dict(stac_dict, kind, extensions=[])
    assert stac_dict["stac_version"] == "1.1.0"
    return stac_dict


def real_scenes(settings: Settings, folder: Path) -> list[Scene]:
    folder.mkdir()
    for name in REAL_SCENES:
        shutil.copy(realdata("worldcereal-flanders-2019", "scenes", name), folder / name)
    svc = services(settings)
    for candidate in discover(str(folder), svc.store):
        outcome = ingest_candidate(candidate, svc.store, svc.sessions)
        assert outcome.status == "ingested", outcome.reason
    with svc.sessions() as session:
        return list(session.scalars(select(Scene).order_by(Scene.acquired_at)))


def record_inputs(sessions: sessionmaker[Session], analysis_id: uuid.UUID, scenes: list[Scene]) -> None:
    with sessions.begin() as session:
        session.get_one(Analysis, analysis_id).input_scenes = [
            {"scene_id": s.scene_id, "version": s.version, "content_hash": s.content_hash} for s in scenes
        ]


def item_ids(page: dict[str, Any]) -> list[str]:
    return [feature["id"] for feature in page["features"]]


def get(client: TestClient, account: Account, url: str, **params: str) -> dict[str, Any]:
    response = client.get(url, headers=account.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_completed_analysis_is_a_valid_item_whose_assets_open_with_the_api_token(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    analysis_id = two_class_analysis(api_app_settings, analyst.id, SQUARE, tmp_path)
    svc = services(api_app_settings)
    body = get(client, analyst, f"/stac/collections/analyses/items/{analysis_id}")
    item = pystac.Item.from_dict(valid(body, pystac.STACObjectType.ITEM))

    assert item.properties["start_datetime"] == "2025-04-01T00:00:00Z" and item.datetime is None
    assert item.geometry == SQUARE
    projection = ProjectionExtension.ext(item)
    assert projection.code == "EPSG:32631" and projection.shape is not None and projection.transform is not None
    crop_map = item.assets["map"]
    bands = RasterExtension.ext(crop_map).bands or []
    classes = ClassificationExtension.ext(bands[0]).classes or []
    with svc.sessions() as session:
        legend = model_legend(session, session.get_one(Analysis, analysis_id).model_version_id)
    assert [(c.value, c.title, f"#{c.color_hint}".lower()) for c in classes[1:]] == [
        (c.id, c.name, c.colour.lower()) for c in legend.classes
    ]
    assert classes[0].value == 0 and classes[0].nodata
    stored = svc.store.get(f"analyses/{analysis_id}/cropmap.tif")
    assert FileExtension.ext(crop_map).size == len(stored)
    # The asset links are the API's downloads, opened with the same token.
    assert client.get(crop_map.href, headers=analyst.headers).content == stored
    assert client.get(item.assets["style"].href, headers=analyst.headers).text.startswith("<!DOCTYPE qgis")
    assert "evidence" not in item.assets  # this map was made without it: no link that would 404
    assert client.get(crop_map.href).status_code == 401
    assert item.properties["processing:software"]["cropai"] and item.properties["cropai:model"] == "cropnet@1.0.0"


def test_each_user_finds_only_the_analyses_they_may_see(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    alice, bob = new_account(client, api_app_settings), new_account(client, api_app_settings)
    admin = new_account(client, api_app_settings, Role.admin)
    alices = str(two_class_analysis(api_app_settings, alice.id, SQUARE, tmp_path))
    bobs = str(two_class_analysis(api_app_settings, bob.id, FAR_AWAY, tmp_path))

    mine = get(client, alice, "/stac/search")
    assert item_ids(mine) == [alices] and mine["numberMatched"] == 1  # Bob's is not even counted
    assert item_ids(get(client, alice, "/stac/search", ids=bobs)) == []
    assert item_ids(get(client, admin, "/stac/collections/analyses/items")) == [alices, bobs]
    assert client.get(f"/stac/collections/analyses/items/{bobs}", headers=alice.headers).status_code == 404
    extent = get(client, alice, "/stac/collections/analyses")["extent"]["spatial"]["bbox"][0]
    assert extent[0] < 2 and extent[2] < 2  # Alice's AOI only, not Bob's in Bavaria
    assert client.get("/stac/search").status_code == 401


def test_search_by_bbox_and_datetime_pages_with_next_links(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    near = str(two_class_analysis(api_app_settings, analyst.id, SQUARE, tmp_path))
    far = str(two_class_analysis(api_app_settings, analyst.id, FAR_AWAY, tmp_path))

    assert item_ids(get(client, analyst, "/stac/search", bbox="11.4,48.0,11.6,48.2")) == [far]
    assert item_ids(get(client, analyst, "/stac/search", bbox="11.4,48.0,0,11.6,48.2,900")) == [far]  # 3D form
    # The season (2025-04-01 to 2025-09-30) overlaps a window that touches it, not one after it.
    assert item_ids(get(client, analyst, "/stac/search", datetime="../2025-04-01T06:00:00Z")) == [near, far]
    assert item_ids(get(client, analyst, "/stac/search", datetime="2025-10-01T00:00:00Z/..")) == []
    # 01:00 in UTC+2 is still the season's last day in UTC; a date alone is its whole day.
    assert item_ids(get(client, analyst, "/stac/search", datetime="2025-10-01T01:00:00+02:00/..")) == [near, far]
    assert item_ids(get(client, analyst, "/stac/search", datetime="2025-09-30")) == [near, far]
    assert item_ids(get(client, analyst, "/stac/search", datetime="2025-10-01/..")) == []
    # A page larger than the catalogue serves is served at its largest, and says so in its links.
    big = get(client, analyst, "/stac/search", limit="100000")
    assert item_ids(big) == [near, far] and "limit=100&" in next(x for x in big["links"] if x["rel"] == "self")["href"]
    first = get(client, analyst, "/stac/search", limit="1")
    assert first["numberMatched"] == 2 and item_ids(first) == [near]
    following = next(link for link in first["links"] if link["rel"] == "next")
    second = client.get(following["href"], headers=analyst.headers).json()
    assert item_ids(second) == [far] and not [link for link in second["links"] if link["rel"] == "next"]
    posted = client.post("/stac/search", headers=analyst.headers, json={"bbox": [1.0, 48.0, 2.0, 49.0], "limit": 5})
    assert item_ids(posted.json()) == [near]


def test_search_by_geometry_takes_the_aoi_itself_not_its_bbox(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    triangle = str(two_class_analysis(api_app_settings, analyst.id, TRIANGLE, tmp_path))
    corner = {"type": "Point", "coordinates": [1.635, 48.218]}  # inside the triangle's bbox, outside the triangle
    inside = {"type": "Point", "coordinates": [1.605, 48.203]}
    assert item_ids(get(client, analyst, "/stac/search", bbox="1.634,48.217,1.636,48.219")) == [triangle]
    assert item_ids(get(client, analyst, "/stac/search", intersects=json.dumps(corner))) == []
    assert item_ids(get(client, analyst, "/stac/search", intersects=json.dumps(inside))) == [triangle]
    posted = client.post(
        "/stac/search", headers=analyst.headers, json={"intersects": inside, "collections": ["analyses"]}
    )
    assert item_ids(posted.json()) == [triangle] and posted.json()["numberMatched"] == 1


def test_real_scenes_are_items_and_an_analysis_links_the_ones_it_read(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    analyst = new_account(client, api_app_settings)
    scenes = real_scenes(api_app_settings, tmp_path / "scenes")
    analysis_id = two_class_analysis(api_app_settings, analyst.id, SQUARE, tmp_path)
    record_inputs(services(api_app_settings).sessions, analysis_id, scenes[:2])

    item = get(client, analyst, f"/stac/collections/analyses/items/{analysis_id}")
    sources = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
    assert len(sources) == 2
    for href, scene in zip(sources, scenes, strict=False):
        found = valid(client.get(href, headers=analyst.headers).json(), pystac.STACObjectType.ITEM)
        assert found["id"] == f"{scene.scene_id}-v1" and found["properties"]["datetime"].startswith("2018-")
        data = found["assets"]["data"]
        assert client.get(data["href"], headers=analyst.headers).content == services(api_app_settings).store.get(
            scene.object_key
        )
        assert [b["name"] for b in data["bands"]] == scene.bands and data["file:size"] == scene.size_bytes
    august = get(client, analyst, "/stac/search", collections="scenes", datetime="2018-08-01/2018-08-31")
    assert item_ids(august) == [f"{scenes[0].scene_id}-v1"]
    # Pages run through the analyses, then the scenes.
    second = get(client, analyst, "/stac/search", limit="2", offset="1")
    assert item_ids(second) == [f"{s.scene_id}-v1" for s in scenes[:2]] and second["numberMatched"] == 4


def test_a_stac_client_finds_an_analysis_on_the_served_api_and_opens_its_map(
    client: TestClient, api_app_settings: Settings, tmp_path: Path
) -> None:
    """pystac-client against uvicorn, as the README shows: it reads the landing page and the
    conformance, searches by POST, follows the next links, and the map downloads with the token."""
    analyst = new_account(client, api_app_settings)
    ids = {str(two_class_analysis(api_app_settings, analyst.id, aoi, tmp_path)) for aoi in (SQUARE, SQUARE, FAR_AWAY)}
    with api_process(api_app_settings, tmp_path / "api.log") as (url, _):
        catalogue = Client.open(f"{url}/stac", headers=analyst.headers)
        search = catalogue.search(
            collections=["analyses"], bbox=[1.5, 48.1, 1.8, 48.3], datetime="2025-04-01/2025-09-30", limit=1
        )
        found = list(search.items())  # two pages of one
        assert len(found) == 2 and {item.id for item in found} < ids
        assert search.matched() == 2
        crop_map = httpx.get(found[0].assets["map"].href, headers=analyst.headers, timeout=30)
        assert crop_map.content == services(api_app_settings).store.get(f"analyses/{found[0].id}/cropmap.tif")


def test_the_landing_page_and_collections_are_valid_stac(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    landing = valid(get(client, analyst, "/stac"), pystac.STACObjectType.CATALOG)
    assert "https://api.stacspec.org/v1.0.0/item-search" in landing["conformsTo"]
    children = [link["href"] for link in landing["links"] if link["rel"] == "child"]
    assert [href.rsplit("/", 1)[1] for href in children] == ["analyses", "scenes"]
    for href in children:  # empty so far: the whole world and an open interval
        valid(client.get(href, headers=analyst.headers).json(), pystac.STACObjectType.COLLECTION)
    listed = get(client, analyst, "/stac/collections")["collections"]
    assert [c["id"] for c in listed] == ["analyses", "scenes"]


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/stac/search?datetime=yesterday", 422, "RFC 3339"),
        ("/stac/search?datetime=2025-09-01T00:00:00Z/2025-04-01T00:00:00Z", 422, "ends before it starts"),
        ("/stac/search?datetime=../..", 422, "at least one end"),
        ("/stac/search?bbox=1,2,3", 422, "minx,miny,maxx,maxy"),
        ("/stac/search?collections=fields", 422, "the collections are analyses, scenes"),
        ("/stac/collections/fields/items", 404, "the collections are analyses, scenes"),
        ("/stac/collections/scenes/items/nothing-v1", 404, "no item 'nothing-v1'"),
        ("/stac/collections/analyses/items/not-a-uuid", 404, "no item"),
        ("/stac/collections/scenes/items/x-v²", 404, "no item"),  # a digit to Python, not to an id
        ("/stac/search?datetime=0001-01-01T00:00:00%2B01:00/..", 422, "RFC 3339"),
        ("/stac/search?datetime=2025-W14", 422, "RFC 3339"),
        ("/stac/search?ids=" + ",".join(f"s{i}-v1" for i in range(101)), 422, "at most 100 in one search"),
        ("/stac/search?intersects={}", 422, "a valid, non-empty GeoJSON geometry"),
        ("/stac/search?intersects=nope", 422, "a GeoJSON geometry as JSON"),
        ('/stac/search?bbox=1,48,2,49&intersects={"type":"Point","coordinates":[1.6,48.2]}', 422, "not both"),
        ("/stac/collections/analyses/items?sortby=datetime", 422, "sortby is not supported"),
    ],
)
def test_bad_search_input_is_refused_saying_what_is_wrong(
    client: TestClient, api_app_settings: Settings, url: str, status: int, says: str
) -> None:
    analyst = new_account(client, api_app_settings)
    response = client.get(url, headers=analyst.headers)
    assert response.status_code == status and says in response.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"filter": {"op": "=", "args": [{"property": "id"}, "x"]}}, "filter is not supported"),
        ({"intersects": {"type": "Point", "coordinates": [48.21, 100.0]}}, "longitude, then latitude"),
        ({"colections": ["analyses"]}, "unknown search field 'colections'"),
        ({"bbox": [1, 2, 3]}, "at least 4"),
    ],
)
def test_a_search_body_with_fields_it_cannot_honour_is_refused_naming_them(
    client: TestClient, api_app_settings: Settings, body: dict[str, Any], says: str
) -> None:
    analyst = new_account(client, api_app_settings)
    response = client.post("/stac/search", headers=analyst.headers, json=body)
    assert response.status_code == 422 and says in response.text

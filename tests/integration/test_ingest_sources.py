"""What an ingestion source may lead to: local files inside the roots only, and http(s)
hosts with public addresses, checked for the source, every redirect and every STAC link.

Public hosts are played by a canned loopback server named in HTTP_PROXY: a request to
http://93.184.215.14/... really leaves the client and gets the canned answer, so the
checks run on the same code path as with the internet, offline."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cropai.config import Settings
from cropai.db import upgrade_database
from cropai.errors import InvalidInput
from cropai.ingest import ingest_candidate
from cropai.services import Services, services
from cropai.source_bounds import SourceBounds
from cropai.sources import StacSearch, discover
from cropai.storage import LocalStore
from tests.conftest import free_port
from tests.scene_files import small_scene_set
from tests.stac_api import (
    CONFORMANCE,
    PUBLIC,
    Answer,
    Canned,
    as_json,
    catalog_answer,
    item_document,
    public_hosts,
    serve_canned,
    serve_stac_api,
)

SERVER = SourceBounds(roots=(), allow_private=False)  # as a deployment run with no roots set
LOOPBACK_ALLOWED = SourceBounds(roots=(), allow_private=True)
SECRET = "CROPAI_SECRET_KEY=do-not-leak-me"


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def catalogue(database_settings: Settings) -> Services:
    svc = services(database_settings)
    upgrade_database(svc.engine)
    return svc


@pytest.fixture
def internal() -> Iterator[Canned]:
    """A service on loopback that must never be asked anything."""
    with serve_canned({"/catalog.json": catalog_answer(), "/B02.tif": Answer(200, SECRET.encode())}) as server:
        yield server


# --- http(s) ----------------------------------------------------------------------------


def test_a_public_url_that_redirects_to_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, local_store: LocalStore, internal: Canned
) -> None:
    moved = {f"{PUBLIC}/catalog.json": Answer(302, headers={"Location": f"{internal.url}/catalog.json"})}
    with (
        public_hosts(monkeypatch, moved) as proxy,
        pytest.raises(InvalidInput, match=r"127\.0\.0\.1, a loopback address"),
    ):
        discover(f"{PUBLIC}/catalog.json", local_store, bounds=SERVER)
    assert proxy.asked == [f"{PUBLIC}/catalog.json"] and internal.asked == []


@pytest.mark.parametrize(
    ("rel", "href", "kind"),
    [
        ("item", "http://10.0.0.1/item.json", "private"),
        ("child", "http://169.254.169.254/latest/meta-data/catalog.json", "link-local"),
        ("item", "http://127.0.0.1:9/item.json", "loopback"),
    ],
)
def test_a_catalog_link_to_an_internal_address_is_never_followed(
    monkeypatch: pytest.MonkeyPatch, local_store: LocalStore, rel: str, href: str, kind: str
) -> None:
    answers = {f"{PUBLIC}/catalog.json": catalog_answer({"rel": rel, "href": href, "type": "application/json"})}
    with public_hosts(monkeypatch, answers) as proxy, pytest.raises(InvalidInput, match=f"a {kind} address"):
        discover(f"{PUBLIC}/catalog.json", local_store, bounds=SERVER)
    assert proxy.asked == [f"{PUBLIC}/catalog.json"]


def test_a_stac_api_page_link_to_a_private_address_is_never_followed(
    monkeypatch: pytest.MonkeyPatch, local_store: LocalStore
) -> None:
    landing = {
        "type": "Catalog",
        "id": "api",
        "stac_version": "1.0.0",
        "description": "d",
        "conformsTo": CONFORMANCE,
        "links": [{"rel": "search", "href": f"{PUBLIC}/search", "method": "POST", "type": "application/geo+json"}],
    }
    page = {
        "type": "FeatureCollection",
        "features": [item_document("S2_1", {"blue": f"{PUBLIC}/B02.tif"})],
        "links": [{"rel": "next", "href": "http://10.0.0.1/search?page=2", "method": "GET"}],
    }
    answers = {f"{PUBLIC}/": as_json(landing), f"{PUBLIC}/search": as_json(page)}
    with (
        public_hosts(monkeypatch, answers) as proxy,
        pytest.raises(InvalidInput, match=r"10\.0\.0\.1, a private address"),
    ):
        discover(PUBLIC, local_store, StacSearch(), bounds=SERVER)
    assert not any("10.0.0.1" in target for target in proxy.asked)


def test_an_asset_redirected_to_an_internal_address_is_rejected_and_not_kept(
    monkeypatch: pytest.MonkeyPatch, catalogue: Services, internal: Canned
) -> None:
    answers = {
        f"{PUBLIC}/catalog.json": catalog_answer({"rel": "item", "href": "./S2_1.json", "type": "application/json"}),
        f"{PUBLIC}/S2_1.json": as_json(item_document("S2_1", {"blue": f"{PUBLIC}/B02.tif"})),
        f"{PUBLIC}/B02.tif": Answer(302, headers={"Location": f"{internal.url}/B02.tif"}),
    }
    with public_hosts(monkeypatch, answers):
        [candidate] = discover(f"{PUBLIC}/catalog.json", catalogue.store, bounds=SERVER)
        outcome = ingest_candidate(candidate, catalogue.store, catalogue.sessions)
    assert outcome.status == "rejected" and "a loopback address" in (outcome.reason or "")
    assert internal.asked == [] and catalogue.store.list("quarantine/") == []


def test_a_redirect_to_a_local_file_is_refused(tmp_path: Path, local_store: LocalStore) -> None:
    moved = {"/moved/catalog.json": "file:///proc/self/environ"}
    with (
        serve_stac_api(free_port(), [], tmp_path, redirects=moved) as url,
        pytest.raises(InvalidInput, match="only http"),
    ):
        discover(f"{url}/moved/catalog.json", local_store, bounds=LOOPBACK_ALLOWED)


def test_a_chain_of_redirects_is_cut_short(tmp_path: Path, local_store: LocalStore) -> None:
    with (
        serve_stac_api(free_port(), [], tmp_path, redirects={"/loop.json": "/loop.json"}) as url,
        pytest.raises(InvalidInput, match="more than 5 redirects"),
    ):
        discover(f"{url}/loop.json", local_store, bounds=LOOPBACK_ALLOWED)


# --- local files ------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder inside the ingest roots, and a secret outside them."""
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.tif").write_text(SECRET)
    return tmp_path / "root"


def in_root(root: Path) -> SourceBounds:
    return SourceBounds(roots=(root.resolve(),), allow_private=False)


@pytest.mark.parametrize("source", ["/proc/self/environ", "{outside}/secret.tif", "{root}/../outside"])
def test_a_source_outside_the_roots_is_refused_and_nothing_is_stored(
    catalogue: Services, root: Path, source: str
) -> None:
    with pytest.raises(InvalidInput, match="CROPAI_INGEST_ROOTS"):
        discover(source.format(root=root, outside=root.parent / "outside"), catalogue.store, bounds=in_root(root))
    assert catalogue.store.list("") == []


def test_a_link_out_of_a_root_is_rejected_without_being_read(catalogue: Services, root: Path) -> None:
    small_scene_set(root / "set", scenes=1)
    (root / "set" / "scenes" / "leak.tif").symlink_to(root.parent / "outside" / "secret.tif")
    outcomes = [
        ingest_candidate(c, catalogue.store, catalogue.sessions)
        for c in discover(str(root / "set" / "scenes"), catalogue.store, bounds=in_root(root))
    ]
    [leak] = [o for o in outcomes if o.source_uri.endswith("leak.tif")]
    assert leak.status == "rejected" and leak.reason is not None
    assert "outside the folders ingestion may read" in leak.reason
    assert SECRET not in leak.reason and catalogue.store.list("quarantine/") == []


def test_a_folder_inside_a_root_ingests_as_before(catalogue: Services, root: Path) -> None:
    small_scene_set(root / "set", scenes=2)
    candidates = discover(str(root / "set" / "scenes"), catalogue.store, bounds=in_root(root))
    outcomes = [ingest_candidate(c, catalogue.store, catalogue.sessions) for c in candidates]
    assert [o.status for o in outcomes] == ["ingested", "ingested"]


def test_a_local_catalog_cannot_link_out_of_the_roots(local_store: LocalStore, root: Path) -> None:
    outside = root.parent / "outside" / "S2_1.json"
    outside.write_text(json.dumps(item_document("S2_1", {"blue": str(root.parent / "outside" / "secret.tif")})))
    document = json.loads(catalog_answer({"rel": "item", "href": str(outside), "type": "application/json"}).body)
    (root / "catalog.json").write_text(json.dumps(document))
    with pytest.raises(InvalidInput, match="outside the folders ingestion may read"):
        discover(str(root / "catalog.json"), local_store, bounds=in_root(root))

"""A small STAC API for tests: landing page, conformance, item search (bbox,
datetime, collections, the query extension's eo:cloud_cover), the asset files and
redirects, served by uvicorn on a loopback port. Enough for pystac-client to talk to
it as it would to a public Sentinel-2 L2A API.

Also a plain HTTP server with canned answers that, named in HTTP_PROXY, stands in for
public hosts: tests see what ingestion does with a public URL without the internet."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

PUBLIC = "http://93.184.215.14"  # a public address, written as one so that no DNS is needed
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
]


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _matches(item: dict[str, Any], search: dict[str, Any]) -> bool:
    if search.get("collections") and item.get("collection") not in search["collections"]:
        return False
    if search.get("bbox"):
        minx, miny, maxx, maxy = search["bbox"]
        ix0, iy0, ix1, iy1 = item["bbox"]
        if ix1 < minx or ix0 > maxx or iy1 < miny or iy0 > maxy:
            return False
    if search.get("datetime"):
        start, _, end = search["datetime"].partition("/")
        moment = _parse_time(item["properties"]["datetime"])
        if start not in ("", "..") and moment < _parse_time(start):
            return False
        if end not in ("", "..") and moment > _parse_time(end):
            return False
    cloud_rule = (search.get("query") or {}).get("eo:cloud_cover", {})
    cloud = item["properties"].get("eo:cloud_cover", 0)
    return not ("lte" in cloud_rule and cloud > cloud_rule["lte"])


def _redirect_to(location: str) -> Callable[[], RedirectResponse]:
    def redirect() -> RedirectResponse:
        return RedirectResponse(location, status_code=302)

    return redirect


def make_app(
    base_url: str, items: list[dict[str, Any]], files: Path, redirects: dict[str, str] | None = None
) -> FastAPI:
    """The API; ``redirects`` maps a path of this server to the Location it redirects to (302)."""
    app = FastAPI()
    for path, location in (redirects or {}).items():
        app.add_api_route(path, _redirect_to(location), methods=["GET", "POST"])

    @app.get("/")
    def landing() -> dict[str, Any]:
        return {
            "type": "Catalog",
            "id": "test-stac-api",
            "stac_version": "1.0.0",
            "description": "test STAC API",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{base_url}/", "type": "application/json"},
                {"rel": "root", "href": f"{base_url}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{base_url}/conformance"},
                {"rel": "search", "href": f"{base_url}/search", "method": "GET", "type": "application/geo+json"},
                {"rel": "search", "href": f"{base_url}/search", "method": "POST", "type": "application/geo+json"},
            ],
        }

    @app.get("/conformance")
    def conformance() -> dict[str, Any]:
        return {"conformsTo": CONFORMANCE}

    @app.post("/search")
    async def search(request: Request) -> dict[str, Any]:
        body = await request.json()
        found = [item for item in items if _matches(item, body)]
        limit = body.get("limit") or len(found)
        return {"type": "FeatureCollection", "features": found[:limit], "links": []}

    @app.get("/files/{name}")
    def asset(name: str) -> FileResponse:
        path = files / name
        if not path.is_file():
            raise HTTPException(404)
        return FileResponse(path)

    return app


@contextmanager
def serve_stac_api(
    port: int, items: list[dict[str, Any]], files: Path, redirects: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve the API on 127.0.0.1:``port`` in a thread; yields its base URL."""
    base_url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(make_app(base_url, items, files, redirects), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("test STAC API did not start")
        time.sleep(0.05)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass(frozen=True)
class Answer:
    """What the canned server answers to one request target."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Canned:
    url: str  # http://127.0.0.1:PORT
    asked: list[str]  # request targets in the order they came


@contextmanager
def serve_canned(answers: dict[str, Answer]) -> Iterator[Canned]:
    """A loopback HTTP server answering each request target (a path, or the absolute URL a
    proxy is asked for) from ``answers``, 404 otherwise; it records every target asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            asked.append(self.path)
            answer = answers.get(self.path, Answer(404))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:  # the tests assert on `asked` instead
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Canned(f"http://127.0.0.1:{server.server_address[1]}", asked)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def public_hosts(monkeypatch: pytest.MonkeyPatch, answers: dict[str, Answer]) -> Iterator[Canned]:
    """http:// requests to hosts other than loopback go through a proxy that answers
    ``answers`` (keyed by URL, e.g. f"{PUBLIC}/catalog.json"); loopback is reached directly."""
    with serve_canned(answers) as proxy:
        for name in ("no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield proxy


def as_json(document: dict[str, Any]) -> Answer:
    return Answer(200, json.dumps(document).encode(), {"Content-Type": "application/json"})


def catalog_answer(*links: dict[str, str]) -> Answer:
    """A static STAC catalog with these links."""
    return as_json({"type": "Catalog", "id": "c", "stac_version": "1.0.0", "description": "d", "links": list(links)})


def item_document(item_id: str, assets: dict[str, str]) -> dict[str, Any]:
    """A STAC item with one single-band asset per key (an Earth Search band name) at its href."""
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "bbox": [1.6, 48.2, 1.61, 48.21],
        "geometry": {"type": "Point", "coordinates": [1.6, 48.2]},
        "properties": {"datetime": "2025-05-01T10:30:00Z"},
        "links": [],
        "assets": {key: {"href": href, "eo:bands": [{"name": key}]} for key, href in assets.items()},
    }

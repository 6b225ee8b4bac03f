"""A small STAC API for tests: landing page, conformance, item search (bbox,
datetime, collections, the query extension's eo:cloud_cover) and the asset files,
served by uvicorn on a loopback port. Enough for pystac-client to talk to it as it
would to a public Sentinel-2 L2A API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse

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
    if "lte" in cloud_rule and cloud > cloud_rule["lte"]:
        return False
    return True


def make_app(base_url: str, items: list[dict[str, Any]], files: Path) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    def landing() -> dict[str, Any]:
        return {
            "type": "Catalog", "id": "test-stac-api", "stac_version": "1.0.0",
            "description": "test STAC API", "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{base_url}/", "type": "application/json"},
                {"rel": "root", "href": f"{base_url}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{base_url}/conformance"},
                {"rel": "search", "href": f"{base_url}/search", "method": "GET", "type": "application/geo+json"},
                {"rel": "search", "href": f"{base_url}/search", "method": "POST", "type": "application/geo+json"},
            ],
        }  # fmt: skip

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
def serve_stac_api(port: int, items: list[dict[str, Any]], files: Path) -> Iterator[str]:
    """Serve the API on 127.0.0.1:``port`` in a thread; yields its base URL."""
    base_url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(make_app(base_url, items, files), host="127.0.0.1", port=port, log_level="warning")
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

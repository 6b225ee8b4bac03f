"""What one request may carry. Bodies over CROPAI_MAX_REQUEST_BYTES are refused on a real
uvicorn without being held in memory; fields over CROPAI_MAX_FIELD_VERTICES are refused;
a large upload is parsed off the event loop, so other requests are answered meanwhile."""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cropai.accounts import create_user
from cropai.config import Settings
from cropai.services import services
from tests.api_fixtures import PASSWORD, api_process, new_account
from tests.integration.api.test_api_catalogue import collection, parcel

MIB = 2**20
BODY_BYTES = 50 * MIB


@dataclass(frozen=True)
class ServedApi:
    url: str
    pid: int
    headers: dict[str, str]  # an analyst's

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rss_bytes(self) -> int:
        """The server process' resident memory, from /proc (Linux)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1]) * 1024


@contextmanager
def served(settings: Settings, log: Path) -> Iterator[ServedApi]:
    """The API as `cropai api` serves it (uvicorn, one process), with an analyst logged in."""
    create_user(services(settings).sessions, "analyst@example.org", PASSWORD)
    with api_process(settings, log) as (url, pid):
        token = httpx.post(f"{url}/auth/token", data={"username": "analyst@example.org", "password": PASSWORD})
        assert token.status_code == 200, token.text + log.read_text()
        yield ServedApi(url, pid, {"Authorization": f"Bearer {token.json()['access_token']}"})


@pytest.fixture
def small_limit_api(api_app_settings: Settings, tmp_path: Path) -> Iterator[ServedApi]:
    with served(api_app_settings.model_copy(update={"max_request_bytes": MIB}), tmp_path / "api.log") as api:
        yield api


def post_filler(api: ServedApi, path: str, size: int, *, chunked: bool) -> tuple[int, dict]:
    """POST ``size`` bytes of whitespace, declared with Content-Length or sent chunked, all of it
    sent whatever the server answers meanwhile; the status and JSON answer."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=60) as sock:
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: 127.0.0.1:{api.port}",
            "Content-Type: application/json",
            *(f"{name}: {value}" for name, value in api.headers.items()),
            "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}",
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        piece = b" " * (64 * 1024)
        left = size
        while left:
            part = piece[: min(left, len(piece))]
            sock.sendall(b"%x\r\n%b\r\n" % (len(part), part) if chunked else part)
            left -= len(part)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_without_being_held_in_memory(
    small_limit_api: ServedApi, chunked: bool
) -> None:
    post_filler(small_limit_api, "/fields", 2 * MIB, chunked=chunked)  # the refusal's own code paths, warmed up
    before = small_limit_api.rss_bytes()
    status, answer = post_filler(small_limit_api, "/fields", BODY_BYTES, chunked=chunked)
    assert status == 413 and "limit of 1048576 bytes" in answer["detail"]
    assert small_limit_api.rss_bytes() - before < BODY_BYTES / 2


def test_a_body_within_the_limit_is_read(small_limit_api: ServedApi) -> None:
    body = json.dumps(collection(parcel(1.60, 48.20, "north"))).encode()
    answer = httpx.post(f"{small_limit_api.url}/fields", content=body, headers=small_limit_api.headers)
    assert answer.status_code == 201 and answer.json()["count"] == 1


def test_a_streamed_body_over_the_limit_is_refused_on_any_route(small_limit_api: ServedApi) -> None:
    chunks = (b" " * (64 * 1024) for _ in range(32))  # 2 MiB, of unknown length: sent chunked
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = httpx.post(f"{small_limit_api.url}/auth/token", content=chunks, headers=form)
    assert answer.status_code == 413 and "CROPAI_MAX_REQUEST_BYTES" in answer.json()["detail"]


def test_a_field_over_the_vertex_limit_is_refused_naming_it(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    limit = api_app_settings.max_field_vertices
    ring = [[1.60 + 0.01 * i / limit, 48.20] for i in range(limit)] + [[1.61, 48.21], [1.60, 48.20]]
    jagged = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    response = client.post("/fields", json=collection(parcel(1.60, 48.20, "ok"), jagged), headers=analyst.headers)
    assert response.status_code == 422
    assert f"feature 1 has {limit + 2} vertices: at most {limit} per field" in response.json()["detail"][0]["msg"]
    assert client.get("/fields", headers=analyst.headers).json()["total"] == 0


def test_a_malformed_upload_is_a_422_naming_the_field(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    response = client.post("/fields", content=b'{"type": "FeatureCollection"}', headers=analyst.headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "features"]
    broken = client.post("/fields", content=b'{"type": "Feature', headers=analyst.headers)
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"


def test_other_requests_are_answered_while_a_large_upload_is_processed(
    api_app_settings: Settings, tmp_path: Path
) -> None:
    # 10,000 fields of 40 vertices, about 9 MB: within every limit, seconds of work for the server.
    features = [parcel(1.5 + (i % 100) * 0.003, 48.0 + (i // 100) * 0.003, f"p{i}", size=0.002) for i in range(10_000)]
    for feature in features:
        [ring] = feature["geometry"]["coordinates"]
        feature["geometry"]["coordinates"] = [densified(ring, 10)]
    body = json.dumps(collection(*features)).encode()
    with served(api_app_settings, tmp_path / "api.log") as api:
        done = threading.Event()
        uploaded: list[httpx.Response] = []

        def upload() -> None:
            try:
                uploaded.append(httpx.post(f"{api.url}/fields", content=body, headers=api.headers, timeout=300))
            finally:
                done.set()

        uploader = threading.Thread(target=upload)
        uploader.start()
        answered_meanwhile = 0
        while not done.wait(0.05):
            healthy = httpx.get(f"{api.url}/healthz", timeout=60)
            if healthy.status_code == 200 and not done.is_set():
                answered_meanwhile += 1
        uploader.join()
    assert uploaded[0].status_code == 201 and uploaded[0].json()["count"] == 10_000
    assert answered_meanwhile > 0


def densified(ring: list[list[float]], per_side: int) -> list[list[float]]:
    """The closed ring with ``per_side`` evenly spaced vertices on each side."""
    points = []
    for (x0, y0), (x1, y1) in itertools.pairwise(ring):
        points += [
            [round(x0 + (x1 - x0) * k / per_side, 6), round(y0 + (y1 - y0) * k / per_side, 6)] for k in range(per_side)
        ]
    return [*points, points[0]]

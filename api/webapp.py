"""The web map viewer: static pages under ``/app`` that call this API with its tokens.

The pages are plain files (``api/web``) with the map library vendored from npm
(``web/``), so serving them needs no build step and the browser fetches nothing from
a CDN. The only outside address a page may load from is the optional base map.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cropai.config import Settings

WEB_ROOT = Path(__file__).resolve().parent / "web"


def mount_web_app(app: FastAPI, settings: Settings) -> None:
    config = {"basemap_url": settings.basemap_url, "basemap_attribution": settings.basemap_attribution}

    @app.get("/app/config.json", include_in_schema=False)
    async def web_config() -> JSONResponse:
        return JSONResponse(config)

    @app.get("/app", include_in_schema=False)
    async def web_root() -> RedirectResponse:
        return RedirectResponse("/app/")

    app.mount("/app", SecurityHeaders(StaticFiles(directory=WEB_ROOT, html=True), content_security_policy(settings)))


def content_security_policy(settings: Settings) -> str:
    """Scripts, styles and API calls from this origin only; images also from the base map's host."""
    images = ["'self'", "data:", "blob:"]
    if settings.basemap_url:
        parts = urlsplit(settings.basemap_url)
        host = parts.netloc.replace("{s}", "*")  # subdomain templates, e.g. {s}.tile.example.org
        images.append(f"{parts.scheme}://{host}")
    return (
        "default-src 'self'; img-src "
        + " ".join(images)
        + "; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    )


class SecurityHeaders:
    """Adds the viewer's Content-Security-Policy (Leaflet positions elements with inline styles)."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)

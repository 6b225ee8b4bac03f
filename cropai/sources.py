"""Where scenes come from: a local folder, an inbox prefix in the object store, a
static STAC catalog (on disk or over HTTP) or a STAC API search. Each source is
listed into :class:`SceneCandidate` records; after that every scene follows the
same path (see :mod:`cropai.ingest`). In folders and the inbox a Sentinel-2 SAFE
product (a ``.SAFE`` folder or a ``.zip`` of one) is one candidate; a STAC item says
the radiometry of each asset and the scene's provenance (:mod:`cropai.stac_metadata`).

What a source may lead to is bounded by a :class:`SourceBounds` (see
:mod:`cropai.source_bounds`): every file, store key, URL, redirect and STAC link is
checked before it is read, and the candidates carry the bounds on to their ingestion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pystac
from pydantic import BaseModel, Field
from pystac.link import Link
from pystac.stac_io import DefaultStacIO
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from cropai import sentinel2
from cropai.errors import InvalidInput, SourceUnreadable
from cropai.provenance import NO_PROVENANCE, SceneProvenance
from cropai.radiometry import Radiometry
from cropai.raster import canonical_band
from cropai.safe import is_safe
from cropai.source_bounds import STORE_PREFIX, SourceBounds, check_source, open_url
from cropai.stac_metadata import asset_radiometry, item_provenance
from cropai.storage import ObjectStore

# What code that lists a source without saying its bounds may read: any local path, and
# hosts on any address the address rule ever lets through.
OPEN = SourceBounds(roots=None, allow_private=True)
# Files next to rasters that are not scenes themselves.
SIDECAR_SUFFIXES = (".aux.xml", ".ovr", ".msk", ".vrt.aux.xml")
SAFE_SUFFIX = ".SAFE"
ZIP_SUFFIX = ".zip"
CANONICAL_BANDS = (*sentinel2.BANDS, sentinel2.SCL_BAND)


class StacSearch(BaseModel):
    """A STAC API item search, as the Prefect UI shows it as a form."""

    collections: list[str] = Field(default=["sentinel-2-l2a"], description="STAC collection ids")
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="minx, miny, maxx, maxy in degrees (EPSG:4326)"
    )
    start: date | None = Field(default=None, description="first acquisition date")
    end: date | None = Field(default=None, description="last acquisition date (inclusive)")
    max_cloud_cover: float | None = Field(default=None, ge=0, le=100, description="largest eo:cloud_cover, percent")
    max_items: int = Field(default=100, ge=1, le=10_000, description="stop after this many items")

    def datetime_range(self) -> str | None:
        if self.start is None and self.end is None:
            return None
        start = f"{self.start.isoformat()}T00:00:00Z" if self.start else ".."
        end = f"{self.end.isoformat()}T23:59:59Z" if self.end else ".."
        return f"{start}/{end}"


@dataclass(frozen=True)
class SceneAsset:
    """One file of a scene. ``href`` is a local path, ``store:KEY`` or an http(s) URL;
    ``bands`` names its bands in order (None: read them from the file or a band mapping);
    ``radiometry`` is what the source says of its digital numbers (None: the file says)."""

    href: str
    bands: tuple[str | None, ...] | None = None
    radiometry: Radiometry | None = None


@dataclass(frozen=True)
class SceneCandidate:
    """A scene found in a source, before it is read. What the source already says
    (id, time, cloud cover) is carried along; the file's own tags are read later."""

    source_uri: str
    name: str
    assets: tuple[SceneAsset, ...]
    scene_id: str | None = None
    acquired_at: datetime | None = None
    cloud_fraction: float | None = None
    from_inbox: bool = False  # inbox objects are removed once landed or quarantined
    stac_item: dict[str, Any] | None = None
    bounds: SourceBounds = OPEN  # what fetching its assets may read
    is_safe: bool = False  # a SAFE product: one .SAFE folder or .zip, or the objects of a .SAFE/ prefix
    provenance: SceneProvenance = NO_PROVENANCE


def discover(
    source: str, store: ObjectStore, search: StacSearch | None = None, bounds: SourceBounds = OPEN
) -> list[SceneCandidate]:
    """List the scenes of ``source`` within ``bounds``; raise :class:`InvalidInput` if the
    source or a link it leads to lies outside them, :class:`SourceUnreadable` if it cannot
    be listed."""
    check_source(source, bounds)
    is_url = urlsplit(source).scheme in ("http", "https")
    if source.startswith(STORE_PREFIX):
        candidates = _inbox(store, source.removeprefix(STORE_PREFIX))
    elif search is not None:
        candidates = _stac_api(source, search, bounds)
    elif (urlsplit(source).path if is_url else source).endswith(".json"):
        candidates = _stac_catalog(source, bounds)
    elif is_url:
        raise SourceUnreadable(
            f"{source}: an http(s) source is a STAC catalog (a URL whose path ends in .json) or a STAC API "
            "(give a search: collections, bbox, dates, max cloud cover)"
        )
    else:
        candidates = _folder(bounds.local_path(source.removeprefix("file://")))
    return [replace(candidate, bounds=bounds) for candidate in candidates]


def _folder(root: Path) -> list[SceneCandidate]:
    """Each raster file, SAFE folder and zip under ``root`` (hidden files and sidecars left out)."""
    if root.is_file() or is_safe(root):
        paths = [root]
    elif root.is_dir():
        paths = sorted(_scene_paths(root))
    else:
        raise SourceUnreadable(f"folder {root} does not exist or cannot be read")
    return [SceneCandidate(str(p), p.name, (SceneAsset(str(p)),), is_safe=is_safe(p)) for p in paths]


def _scene_paths(folder: Path) -> list[Path]:
    """The scenes under ``folder``: a SAFE folder counts as one, its files are not listed apart."""
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name.lower().endswith(SIDECAR_SUFFIXES):
            continue
        if entry.is_file() or is_safe(entry):
            found.append(entry)
        elif entry.is_dir():
            found.extend(_scene_paths(entry))
    return found


def _inbox(store: ObjectStore, prefix: str) -> list[SceneCandidate]:
    """Each object of the inbox prefix, except that the objects under one ``X.SAFE/`` prefix
    are one candidate (a SAFE folder uploaded as it is)."""
    try:
        objects = store.list(prefix)
    except Exception as exc:
        raise SourceUnreadable(f"cannot list {prefix!r} in {store.url}: {exc}") from None
    singles: list[SceneCandidate] = []
    products: dict[str, list[str]] = {}
    for info in objects:
        if info.key.endswith(SIDECAR_SUFFIXES):
            continue
        root, marker, _ = info.key.partition(f"{SAFE_SUFFIX}/")
        if marker:
            products.setdefault(f"{root}{SAFE_SUFFIX}", []).append(info.key)
            continue
        name = info.key.rsplit("/", 1)[-1]
        singles.append(
            SceneCandidate(
                f"{store.url}/{info.key}",
                name,
                (SceneAsset(f"{STORE_PREFIX}{info.key}"),),
                from_inbox=True,
                is_safe=name.lower().endswith(ZIP_SUFFIX),
            )
        )
    folders = [
        SceneCandidate(
            f"{store.url}/{root}/",
            root.rsplit("/", 1)[-1],
            tuple(SceneAsset(f"{STORE_PREFIX}{key}") for key in sorted(keys)),
            from_inbox=True,
            is_safe=True,
        )
        for root, keys in sorted(products.items())
    ]
    return singles + folders


def _stac_catalog(href: str, bounds: SourceBounds) -> list[SceneCandidate]:
    try:
        root = pystac.read_file(href, stac_io=BoundedStacIO(bounds))
        items = list(root.get_items(recursive=True)) if isinstance(root, pystac.Catalog) else [root]
    except Exception as exc:
        _raise_refusal(exc)
        raise SourceUnreadable(f"cannot read the STAC catalog {href}: {exc}") from None
    if not all(isinstance(item, pystac.Item) for item in items):
        raise SourceUnreadable(f"{href} is a STAC {type(root).__name__}, expected a catalog, collection or item")
    return [_from_item(item) for item in items]


def _stac_api(url: str, search: StacSearch, bounds: SourceBounds) -> list[SceneCandidate]:
    query = None
    if search.max_cloud_cover is not None:
        query = {"eo:cloud_cover": {"lte": search.max_cloud_cover}}
    try:
        client = Client.open(url, stac_io=BoundedApiIO(bounds))
        results = client.search(
            collections=search.collections,
            bbox=search.bbox,
            datetime=search.datetime_range(),
            query=query,
            max_items=search.max_items,
        )
        items = list(results.items())
    except Exception as exc:
        _raise_refusal(exc)
        raise SourceUnreadable(f"STAC API search at {url} failed: {exc}") from None
    return [_from_item(item) for item in items]


def _raise_refusal(exc: BaseException) -> None:
    """Re-raise the bounds' refusal behind ``exc``: pystac wraps what reading a link raised."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, InvalidInput):
            raise seen from None
        seen = seen.__cause__ or seen.__context__


class BoundedStacIO(DefaultStacIO):
    """pystac's reader of static catalogs, reading every document (so every link) within bounds."""

    def __init__(self, bounds: SourceBounds) -> None:
        super().__init__()
        self.bounds = bounds

    def read_text_from_href(self, href: str) -> str:
        if urlsplit(href).scheme in ("http", "https"):
            with open_url(href, self.bounds) as response:
                response.raise_for_status()
                response.read()
                return response.text
        return self.bounds.local_path(href.removeprefix("file://")).read_text(encoding="utf-8")


class BoundedApiIO(StacApiIO):
    """pystac-client's reader of STAC APIs, sending every request (pages, links) within bounds."""

    def __init__(self, bounds: SourceBounds) -> None:
        super().__init__()
        self.bounds = bounds

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = source.to_dict()["href"] if isinstance(source, Link) else str(source)
        if urlsplit(href).scheme not in ("http", "https"):  # StacApiIO would open it as a local file
            raise InvalidInput(f"{href}: a STAC API and its links are read over http(s) only")
        return super().read_text(source, *args, **kwargs)

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        method = (method or "GET").upper()
        payload = {"json": parameters} if method in ("POST", "PUT", "PATCH") else {"params": parameters}
        try:
            with open_url(href, self.bounds, method, headers=headers, **payload) as response:
                response.read()
        except httpx.HTTPError as exc:
            raise APIError(f"{method} {href}: {exc}") from None
        if not response.is_success:  # the answer's body is not repeated: it could be anything
            raise APIError(f"{method} {href} answered HTTP {response.status_code}")
        return response.text


def _from_item(item: Any) -> SceneCandidate:
    """A STAC item as a candidate: one-band assets (Sentinel-2 L2A on public APIs) when
    they cover every band, else the multi-band data assets named by ``eo:bands``."""
    single: dict[str, SceneAsset] = {}  # one asset per band; GeoTIFF before JPEG 2000 copies
    multi = []
    as_dict = item.to_dict()
    by_format = sorted(item.assets.items(), key=lambda kv: "jp2" in (kv[1].media_type or ""))
    for key, asset in by_format:
        names = _asset_band_names(key, asset)
        if names is None:
            continue
        entry = SceneAsset(asset.get_absolute_href(), names, asset_radiometry(as_dict, key))
        if len(names) > 1:
            multi.append(entry)
        elif (band := names[0]) is not None and band not in single:
            single[band] = entry
    covered = set(single)
    assets = list(single.values()) + ([] if set(sentinel2.BANDS) <= covered else multi)
    cloud = item.properties.get("eo:cloud_cover")
    return SceneCandidate(
        source_uri=item.get_self_href() or item.id,
        name=item.id,
        assets=tuple(assets),
        scene_id=item.id,
        acquired_at=item.datetime,
        cloud_fraction=None if cloud is None else float(cloud) / 100,
        stac_item=as_dict,
        provenance=item_provenance(as_dict),
    )


def _asset_band_names(key: str, asset: Any) -> tuple[str | None, ...] | None:
    """Canonical band names of an asset, or None when it holds no band we use."""
    eo_bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands")
    if eo_bands:
        names = tuple(canonical_band(b.get("name")) or canonical_band(b.get("common_name")) for b in eo_bands)
        if len(names) == 1 and names[0] is None:
            names = (canonical_band(key),)
    else:
        names = (canonical_band(key),)
    return names if any(n in CANONICAL_BANDS for n in names) else None
